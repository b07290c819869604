"""SIGTERM as Ctrl-C, for this process only: a fork of it that has not exec'd (pyroute2's netns
helpers, which pyroute2 ends with SIGTERM) dies by the signal as it would have, instead of running
the controller's rollback in a copy of it (it did, and left the controller waiting on it)."""

from __future__ import annotations

import os
import signal

import pytest

from faultline.controller.run.interrupt import Terminated, sigterm_as_interrupt


def test_sigterm_raises_terminated_here_and_kills_a_fork_as_before():
    with sigterm_as_interrupt():
        ready_r, ready_w = os.pipe()
        hold_r, _hold_w = os.pipe()  # never written: the child blocks on it until the signal
        pid = os.fork()
        if pid == 0:  # the child: a copy of this process, the handler inherited
            try:
                os.write(ready_w, b"x")
                os.read(hold_r, 1)
            except BaseException:
                os._exit(3)  # what it must not do: carry on in our code
            os._exit(0)
        assert os.read(ready_r, 1) == b"x"  # the child runs, with the handler
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs as the call returns
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
