"""The PROCESS mechanism on real child processes: a pause that fails part way leaves nothing stopped."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from faultline.agent.domain.errors import PermissionDenied
from faultline.agent.domain.journal import Journal
from faultline.agent.domain.policy import RestartCommand
from faultline.agent.domain.spec import FaultKind, FaultSpec, ProcessAction, ProcessSpec, Selector, TargetBy
from faultline.agent.kernel import signals
from testkit.netns import proc_state, wait_until


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


def test_restart_unit_asks_systemd_and_a_unit_it_does_not_know_is_not_found(tmp_path, monkeypatch):
    """No systemd runs here (nor in the VM), so a stand-in `systemctl` answers `show` for one
    known unit and records `restart`: what is proven is the agent's side (lookup, refusal,
    the call it makes). On a host without systemd the spec is refused (tests/lab)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
if [ "$1" = show ]; then
  if [ "$7" = gateway.service ]; then printf 'LoadState=loaded\\nControlGroup=/gw.slice/gateway.service\\n'
  else echo LoadState=not-found; fi
fi
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(signals, "systemd_running", lambda: True)
    monkeypatch.setattr(signals, "CGROUP_ROOT", tmp_path / "cgroup")
    unit_dir = tmp_path / "cgroup" / "gw.slice" / "gateway.service"
    unit_dir.mkdir(parents=True)
    (unit_dir / "cgroup.procs").write_text("")  # the unit's processes: none of ours, and that is fine

    def spec(unit: str) -> FaultSpec:
        return FaultSpec(FaultKind.PROCESS, Selector(""), 1000,
                         process=ProcessSpec(ProcessAction.RESTART_UNIT, TargetBy.UNIT, unit))
    mech = signals.ProcessSignaller(Journal(tmp_path / "j"), tmp_path, "")
    assert mech.refuses(spec("gateway.service")) == ""
    with pytest.raises(signals.NotFound, match=r"no unit 'nosuch\.service'"):
        mech.apply("f-1", spec("nosuch.service"), 0)
    assert "restart" not in calls.read_text()  # nothing restarted for a unit systemd does not know
    mech.apply("f-2", spec("gateway.service"), 0)
    assert calls.read_text().splitlines()[-1] == "restart --no-block -- gateway.service"
    mech.heal("f-2")
    monkeypatch.setattr(signals, "systemd_running", lambda: False)
    assert "systemd is not running" in mech.refuses(spec("gateway.service"))


def test_stop_is_a_sigterm_the_process_handles_and_the_restart_runs_at_heal(tmp_path):
    """STOP (graceful): the target gets SIGTERM and shuts down its own way (here: a trap that
    writes a file), recorded with its restart as the undo; healing runs the restart command."""
    said, restarted = tmp_path / "said", tmp_path / "restarted"
    # One process that never forks: a shell loop's `sleep` children would match the cmdline too.
    handler = (f"import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: "
               f"(pathlib.Path({str(said)!r}).write_text('bye\\n'), sys.exit(0))); "
               f"pathlib.Path({str(tmp_path / 'ready')!r}).touch(); time.sleep(3600)")
    child = subprocess.Popen([sys.executable, "-c", handler, "graceful-target-1019"])
    wait_until(lambda: (tmp_path / "ready").exists() or child.poll() is not None, 10, "its SIGTERM handler in place")
    assert (tmp_path / "ready").exists()
    try:
        journal = Journal(tmp_path / "j")
        # The policy names the command and its user; the request only names it.
        mech = signals.ProcessSignaller(journal, tmp_path, "", {"again": RestartCommand(
            ("/bin/sh", "-c", f"echo again $(id -u) > {restarted}"), "root")})
        spec = FaultSpec(FaultKind.PROCESS, Selector(""), 1000, process=ProcessSpec(
            ProcessAction.STOP, TargetBy.CMDLINE, "graceful-target-1019", "again"))
        mech.apply("f-1", spec, 0)
        assert child.wait(timeout=5) == 0  # exited by its own handler, not killed by the signal
        assert said.read_text() == "bye\n"
        assert not journal.is_empty()  # the restart is recorded before the signal went
        assert not restarted.exists()
        assert mech.heal("f-1").dropped == 1
        wait_until(lambda: restarted.exists() and restarted.read_text().endswith("\n"), 5, "the restart's output")
        assert restarted.read_text() == "again 0\n"
        assert journal.is_empty()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_a_restart_runs_as_the_policys_user_and_a_target_over_max_processes_is_refused(tmp_path):
    out = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp is 0700 root: nobody could not write there
    out.chmod(0o777)
    assert "as nobody" in signals.spawn(["/bin/sh", "-c", f"id -u > {out}/uid"], str(out / "log"), "nobody",
                                        in_lab=True)
    wait_until(lambda: (out / "uid").exists() and (out / "uid").read_text().endswith("\n"), 5, "its output")
    assert (out / "uid").read_text().strip() == str(pwd.getpwnam("nobody").pw_uid)
    children = [subprocess.Popen(["/bin/sh", "-c", "sleep 3600; :", "many-1019"], start_new_session=True)
                for _ in range(3)]
    try:
        mech = signals.ProcessSignaller(Journal(tmp_path / "j"), tmp_path, "", max_processes=2)
        spec = FaultSpec(FaultKind.PROCESS, Selector(""), 1000,
                         process=ProcessSpec(ProcessAction.PAUSE, TargetBy.CMDLINE, "many-1019"))
        with pytest.raises(PermissionDenied, match=r"max_processes: .* matches [3-6] processes; .* at most 2"):
            mech.apply("f-1", spec, 0)
        # Nothing signalled: none of them stopped (T).
        assert all(Path(f"/proc/{c.pid}/stat").read_text().split(") ")[1][0] != "T" for c in children)
    finally:
        shutil.rmtree(out)
        for c in children:
            os.killpg(c.pid, signal.SIGKILL)  # its sleep too
            c.wait()


def pause(value: str) -> FaultSpec:
    return FaultSpec(FaultKind.PROCESS, Selector(""), 10_000,
                     process=ProcessSpec(ProcessAction.PAUSE, TargetBy.CMDLINE, value))


def test_max_processes_counts_every_active_process_fault_not_one_request(tmp_path):
    """Issue 32 item 5: with max_processes 1, four requests paused four processes."""
    procs = [subprocess.Popen(["sleep", f"102{i}"]) for i in range(3)]
    mech = signals.ProcessSignaller(Journal(tmp_path), tmp_path, "", max_processes=2)
    try:
        mech.apply("f-1", pause("sleep 1020"), 0)
        mech.apply("f-2", pause("sleep 1021"), 0)
        with pytest.raises(PermissionDenied, match=r"3 processes would be under PROCESS faults at once \(2 already\)"):
            mech.apply("f-3", pause("sleep 1022"), 0)
        assert wait_state(procs[2].pid, "S") == "S"  # the refused one was never stopped
        mech.apply("f-4", pause("sleep 1020"), 0)  # the same process again: still 2 in all
        for f in ("f-1", "f-2", "f-4"):
            mech.heal(f)
    finally:
        for p in procs:
            p.kill()


def test_overlapping_pauses_resume_a_process_only_when_the_last_heals(tmp_path):
    p = subprocess.Popen(["sleep", "1031"])
    journal = Journal(tmp_path)
    mech = signals.ProcessSignaller(journal, tmp_path, "")
    try:
        mech.apply("f-1", pause("sleep 1031"), 0)
        mech.apply("f-2", pause("sleep 1031"), 0)
        assert wait_state(p.pid, "T") == "T"
        mech.heal("f-1")
        assert wait_state(p.pid, "T") == "T"  # f-2 still pauses it (healing one resumed it before)
        mech.heal("f-2")
        assert wait_state(p.pid, "S") == "S" and journal.is_empty()
    finally:
        p.kill()


def test_a_kills_restart_acts_only_once_the_kill_has_landed(tmp_path, monkeypatch):
    """The restart is journalled before the kill (durable before the change); after a crash
    between the two, recovery finds the target still running and starts no second copy."""
    monkeypatch.setattr(signals, "RESTART_GRACE_S", 0.2)
    restarted = tmp_path / "restarted"
    target = subprocess.Popen(["/bin/sleep", "1012"])
    try:
        proc = wait_until(lambda: signals.identify(target.pid), 5, "the target listed")
        undo = {"op": "run", "name": "again", "argv": ["/bin/sh", "-c", f"echo again > {restarted}"],
                "user": "root", "log": str(tmp_path / "r.log"), "after": [[proc.pid, proc.start]]}
        said = signals.revert(undo)  # as recovery would, with the kill never sent
        assert "not restarted, its kill never landed" in said and str(target.pid) in said
        assert not restarted.exists() and target.poll() is None
        target.kill()
        wait_until(lambda: proc_state(target.pid) == "Z", 5, "a zombie")
        # Killed but not reaped by its parent (as a scenario's process is): it has ended.
        assert "restarted again" in signals.revert(undo)  # the kill landed: now it restarts
        target.wait()
        wait_until(restarted.exists, 5, "the restart ran")
    finally:
        if target.poll() is None:
            target.kill()
        target.wait()
