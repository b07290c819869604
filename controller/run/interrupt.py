"""SIGTERM handled as Ctrl-C: what a CI system sends to cancel a job must heal every fault as
an interrupt does (rollbacks, the injector's blocks), not leave it to run out its lease."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT would raise KeyboardInterrupt (so every handler of one heals both)."""


_OWNER = [0]  # the pid that installed the handler


def _raise(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _OWNER[0]:
        # A fork of ours that has not exec'd (pyroute2 forks netns helpers and ends them with
        # SIGTERM): it must die as it would have, not run our rollback in a copy of this process.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated(f"signal {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread. A handler someone else set is
    left alone, and nothing is done off the main thread (Python delivers signals only there)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    _OWNER[0] = os.getpid()
    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
