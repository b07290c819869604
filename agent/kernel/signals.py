"""PROCESS faults: pause (SIGSTOP, SIGCONT at heal), kill (SIGKILL, restart command at heal),
restart of a systemd unit.

Each signal that needs undoing is journalled with its undo before it is sent, so a paused
process is resumed when the fault heals, when the agent stops, and by the next start (or
`faultline-agent cleanup`) after a crash. A process is named by its pid and start time
(/proc/PID/stat field 22), so an undo never signals a process that reused the pid.
Only processes in the agent's own network namespace are targets: on a lab of namespaces
sharing one kernel, each agent reaches only its own host's processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.domain.errors import InvalidArgument, KernelError, NotFound
from agent.domain.spec import MECHANISM_KINDS, Counters, FaultSpec, Mechanism, ProcessAction, ProcessSpec, TargetBy
from agent.kernel.ebpf_drop import Recorder

log = logging.getLogger(__name__)

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PF_KTHREAD = 0x00200000
UNDO_OPS = ("sigcont", "run")


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # clock ticks after boot: with the pid, one process for good
    comm: str


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """(comm, fields from the 3rd on) of /proc/PID/stat, None if the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    open_, close = text.index("("), text.rindex(")")
    return text[open_ + 1: close], text[close + 2:].split()


def identify(pid: int) -> Proc | None:
    st = _stat(pid)
    if st is None:
        return None
    comm, rest = st
    return Proc(pid, int(rest[19]), comm)


def alive(pid: int, start: int) -> bool:
    p = identify(pid)
    return p is not None and p.start == start


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def spawn(argv: list[str], log_path: str) -> int:
    """Start a restart command detached (own session), output to log_path; reaped by a thread."""
    with open(log_path, "ab") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
    return child.pid


def revert(undo: dict[str, Any]) -> str:
    """Undo one journalled PROCESS change (also from a later process, after a crash)."""
    if undo["op"] == "sigcont":
        if not alive(undo["pid"], undo["start"]):
            return f"pid {undo['pid']} is gone: nothing to resume"
        os.kill(undo["pid"], signal.SIGCONT)
        return f"resumed pid {undo['pid']} ({undo.get('comm', '')})"
    if undo["op"] == "run":
        pid = spawn(undo["argv"], undo["log"])
        return f"restarted {undo['argv'][0]} as pid {pid}"
    raise ValueError(f"unknown undo op {undo['op']!r}")


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1 and (st := _stat(pid)) is not None:
        out.add(pid)
        pid = int(st[1][1])
    return out


@dataclass
class _Applied:
    spec: ProcessSpec
    procs: list[Proc]
    undos: list[tuple[int, dict[str, Any]]]  # journal seq, undo
    armed: bool = False


class ProcessSignaller:
    mechanism = Mechanism.SIGNAL
    kinds = MECHANISM_KINDS[Mechanism.SIGNAL]

    def __init__(self, recorder: Recorder, state_dir: Path, netns: str) -> None:
        self._rec = recorder
        self._state_dir = Path(state_dir)
        self._netns = netns
        self._own_ns = os.stat("/proc/self/ns/net").st_ino
        self._protected = {1} | _ancestors(os.getpid())  # PID 1, the agent and whoever started it
        self._faults: dict[str, _Applied] = {}
        self._lock = threading.Lock()

    def ready(self, wait_s: float) -> None:
        """Nothing to compile: always ready."""

    def refuses(self, spec: FaultSpec) -> str:
        assert spec.process is not None
        if spec.process.by is TargetBy.UNIT and not systemd_running():
            return "systemd is not running on this host (no /run/systemd/system): no units to target"
        return ""

    # -- targets ---------------------------------------------------------
    def _ours(self, pid: int) -> bool:
        """In the agent's network namespace, not protected, not a kernel thread."""
        if pid in self._protected:
            return False
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != self._own_ns:
                return False
        except OSError:
            return False
        st = _stat(pid)
        return st is not None and not int(st[1][6]) & PF_KTHREAD

    def _cgroup_pids(self, path: Path) -> list[int]:
        pids = []
        for procs in sorted(path.rglob("cgroup.procs")):
            try:
                pids += [int(x) for x in procs.read_text().split()]
            except OSError:
                continue
        return pids

    def resolve(self, p: ProcessSpec) -> list[Proc]:
        where = f"spec.process.target.{p.by.value}"
        here = "in this host's network namespace"
        if p.by is TargetBy.PID:
            pid = int(p.value)
            if pid in self._protected:
                raise InvalidArgument(where, "not PID 1, the agent or its ancestors", pid)
            if identify(pid) is None or not self._ours(pid):
                raise NotFound(f"{where}: no process {pid} {here}")
            candidates = [pid]
        elif p.by in (TargetBy.NAME, TargetBy.CMDLINE):
            candidates = []
            for entry in PROC.iterdir():
                if not entry.name.isdigit() or not self._ours(pid := int(entry.name)):
                    continue
                if p.by is TargetBy.NAME:
                    st = _stat(pid)
                    hit = st is not None and st[0] == p.value
                else:
                    try:
                        hit = p.value in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        hit = False
                if hit:
                    candidates.append(pid)
            if not candidates:
                raise NotFound(f"{where}: no process matches {p.value!r} {here}")
        else:
            cgroup = CGROUP_ROOT / p.value if p.by is TargetBy.CGROUP else self._unit_cgroup(p.value)
            if not (cgroup / "cgroup.procs").is_file():
                raise NotFound(f"{where}: no cgroup {cgroup}")
            candidates = [pid for pid in self._cgroup_pids(cgroup) if self._ours(pid)]
            if not candidates and p.action is not ProcessAction.RESTART_UNIT:
                raise NotFound(f"{where}: no process of {p.value} {here}")
        procs = [x for pid in candidates if (x := identify(pid)) is not None]
        if not procs and p.action is not ProcessAction.RESTART_UNIT:
            raise NotFound(f"{where}: {p.value} exited meanwhile")
        return procs

    def _unit_cgroup(self, unit: str) -> Path:
        out = subprocess.run(["systemctl", "show", "-p", "LoadState", "-p", "ControlGroup", "--", unit],
                             capture_output=True, text=True, timeout=10)
        props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        if props.get("LoadState") != "loaded":
            raise NotFound(f"spec.process.target.unit: no unit {unit!r} ({props.get('LoadState', out.stderr.strip())})")
        return CGROUP_ROOT / props.get("ControlGroup", "").lstrip("/")

    # -- changes ---------------------------------------------------------
    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None:
        """Targets are found now (a bad one fails before anything happens); armed: act now too."""
        assert spec.process is not None
        applied = _Applied(spec.process, self.resolve(spec.process), [])
        with self._lock:
            self._faults[fault_id] = applied
        if armed:
            self.arm(fault_id)

    def arm(self, fault_id: str) -> None:
        """Act now. If anything fails part way, what was done is undone before the error goes up
        (the engine never records a fault whose arm failed, so nothing else would undo it)."""
        try:
            self._arm(fault_id)
        except BaseException:
            self.heal(fault_id)
            raise

    def _arm(self, fault_id: str) -> None:
        with self._lock:
            a = self._faults[fault_id]
        a.armed = True
        p = a.spec
        if p.action is ProcessAction.RESTART_UNIT:
            out = subprocess.run(["systemctl", "restart", "--", p.value], capture_output=True, text=True, timeout=120)
            if out.returncode:
                raise KernelError(f"systemctl restart {p.value}: {out.stderr.strip()}")
            return
        ends = {ProcessAction.KILL: signal.SIGKILL, ProcessAction.STOP: signal.SIGTERM}
        sig = ends.get(p.action)
        if sig and p.restart_command:
            undo = {"op": "run", "argv": list(p.restart_command),
                    "log": str(self._state_dir / f"restart-{fault_id}.log")}
            a.undos.append((self._rec.record(fault_id, self._change(sig.name.lower(), a.procs), undo), undo))
        for proc in a.procs:
            if sig:
                if alive(proc.pid, proc.start):
                    os.kill(proc.pid, sig)
                    log.info("%s: %s pid %d (%s)", fault_id, sig.name, proc.pid, proc.comm)
                continue
            undo = {"op": "sigcont", "pid": proc.pid, "start": proc.start, "comm": proc.comm}
            seq = self._rec.record(fault_id, self._change("sigstop", [proc]), undo)
            if not alive(proc.pid, proc.start):  # exited since it was found
                self._rec.release(seq)
                continue
            a.undos.append((seq, undo))
            os.kill(proc.pid, signal.SIGSTOP)
            log.info("%s: SIGSTOP pid %d (%s)", fault_id, proc.pid, proc.comm)

    def _change(self, op: str, procs: list[Proc]) -> dict[str, Any]:
        return {"op": op, "netns": self._netns, "pids": [[x.pid, x.start, x.comm] for x in procs]}

    def heal(self, fault_id: str) -> Counters:
        with self._lock:
            a = self._faults.pop(fault_id, None)
        if a is None:
            return Counters()
        for seq, undo in a.undos:
            log.info("%s: %s", fault_id, revert(undo))
            self._rec.release(seq)
        return self.counters_of(a)

    @staticmethod
    def counters_of(a: _Applied) -> Counters:
        return Counters(matched=len(a.procs), dropped=len(a.procs) if a.armed else 0)

    def counters(self, fault_id: str) -> Counters:
        with self._lock:
            a = self._faults.get(fault_id)
        return Counters() if a is None else self.counters_of(a)
