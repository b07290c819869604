"""The PROCESS mechanism on real child processes: a pause that fails part way leaves nothing stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.domain.journal import Journal
from agent.domain.spec import FaultKind, FaultSpec, ProcessAction, ProcessSpec, Selector, TargetBy
from agent.kernel import signals


def state_of(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def wait_state(pid: int, want: str) -> str:
    deadline = time.monotonic() + 5
    while (got := state_of(pid)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_a_pause_that_fails_part_way_resumes_what_it_stopped(tmp_path, monkeypatch):
    procs = [subprocess.Popen(["sleep", "1017"]) for _ in range(2)]
    try:
        journal = Journal(tmp_path)
        mech = signals.ProcessSignaller(journal, tmp_path, "")
        spec = FaultSpec(FaultKind.PROCESS, Selector(""), 1000,
                         process=ProcessSpec(ProcessAction.PAUSE, TargetBy.CMDLINE, "sleep 1017"))
        real_kill, calls = os.kill, []

        def kill(pid: int, sig: int) -> None:
            calls.append(sig)
            if sig == signal.SIGSTOP and calls.count(signal.SIGSTOP) == 2:
                raise PermissionError("refused")  # the second target cannot be stopped
            real_kill(pid, sig)
        monkeypatch.setattr(signals.os, "kill", kill)
        with pytest.raises(PermissionError):
            mech.apply("f-1", spec, 0)
        assert signal.SIGCONT in calls  # the first one was resumed
        assert [wait_state(p.pid, "S") for p in procs] == ["S", "S"]
        assert journal.is_empty()
        assert mech.counters("f-1").matched == 0  # nothing kept for a fault the engine never recorded
    finally:
        for p in procs:
            p.kill()
            p.wait()
