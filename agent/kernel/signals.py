"""PROCESS faults: pause (SIGSTOP, SIGCONT at heal), kill (SIGKILL, restart command at heal),
restart of a systemd unit.

Least privilege: a request names a restart command of the host's policy, never a command line;
it runs as the policy's user, outside the agent's cgroup and sandbox (a transient systemd
service where systemd runs). A target may reach at most the policy's max_processes, never
the root cgroup (an inactive unit has no cgroup: it is refused, not widened to everything).

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
import pwd
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultline.agent.domain.errors import InvalidArgument, KernelError, NotFound, PermissionDenied
from faultline.agent.domain.journal import Recorder
from faultline.agent.domain.policy import RestartCommand
from faultline.agent.domain.spec import (
    MECHANISM_KINDS,
    Counters,
    FaultSpec,
    Mechanism,
    ProcessAction,
    ProcessSpec,
    TargetBy,
)

log = logging.getLogger(__name__)

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PF_KTHREAD = 0x00200000
UNDO_OPS = ("sigcont", "run")
# A restart after a SIGTERM waits this long for its target to be gone (it may be exiting).
RESTART_GRACE_S = 2.0


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


def spawn(argv: list[str], log_path: str, user: str = "root", in_lab: bool = False) -> str:
    """Start a restart command as `user`, detached. Where systemd runs (and not in a lab
    namespace): a transient service, so it is outside the agent's cgroup and sandbox and
    survives the agent's restart. Else its own session, output to log_path, reaped by a thread."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise KernelError(f"restart as user {user!r}: no such user on this host") from None
    if systemd_running() and not in_lab:
        # --no-block: queued with systemd, not waited for (this runs inside a heal, under the engine lock).
        out = subprocess.run(["systemd-run", "--quiet", "--collect", "--no-block", f"--uid={pw.pw_uid}",
                              f"--gid={pw.pw_gid}", "--", *argv], capture_output=True, text=True, timeout=10,
                             check=False)
        if out.returncode:
            raise KernelError(f"systemd-run {argv[0]}: {out.stderr.strip()}")
        return f"a transient service as {user}"
    ids = {} if pw.pw_uid == 0 else {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    with open(log_path, "ab") as out_f:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_f, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True, cwd="/", **ids)  # type: ignore[arg-type]
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
    return f"pid {child.pid} as {user}"


def revert(undo: dict[str, Any]) -> str:
    """Undo one journalled PROCESS change (also from a later process, after a crash)."""
    if undo["op"] == "sigcont":
        if not alive(undo["pid"], undo["start"]):
            return f"pid {undo['pid']} is gone: nothing to resume"
        os.kill(undo["pid"], signal.SIGCONT)
        return f"resumed pid {undo['pid']} ({undo.get('comm', '')})"
    if undo["op"] == "run":
        # Journalled before the kill (an undo is durable before its change), it acts only once
        # the kill has landed: after a crash between record and kill, the target still runs.
        left = _still_running(undo.get("after", []), RESTART_GRACE_S)
        if left:
            return (f"{undo.get('name', undo['argv'][0])}: not restarted, its kill never landed "
                    f"(pid {', '.join(map(str, left))} still runs)")
        how = spawn(undo["argv"], undo["log"], undo.get("user", "root"), bool(undo.get("netns")))
        return f"restarted {undo.get('name', undo['argv'][0])} ({undo['argv'][0]}) as {how}"
    raise ValueError(f"unknown undo op {undo['op']!r}")


def running(pid: int, start: int) -> bool:
    """Alive and not a zombie: a killed child its parent has not reaped yet has ended."""
    st = _stat(pid)
    return st is not None and int(st[1][19]) == start and st[1][0] not in ("Z", "X")


def _still_running(procs: list[list[int]], grace_s: float) -> list[int]:
    """Those of (pid, start) still running after up to grace_s (a SIGTERM'd one may be exiting)."""
    deadline = time.monotonic() + grace_s
    while (left := [pid for pid, start in procs if running(pid, start)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


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

    def __init__(self, recorder: Recorder, state_dir: Path, netns: str,
                 restart_commands: dict[str, RestartCommand] | None = None, max_processes: int = 8) -> None:
        self._rec = recorder
        self._restarts = dict(restart_commands or {})
        self._max_processes = max_processes
        self._state_dir = Path(state_dir)
        self._netns = netns
        self._own_ns = os.stat("/proc/self/ns/net").st_ino
        self._protected = {1} | _ancestors(os.getpid())  # PID 1, the agent and whoever started it
        self._faults: dict[str, _Applied] = {}
        self._lock = threading.Lock()

    def ready(self, wait_s: float) -> None:
        """Nothing to compile: always ready."""

    def set_policy(self, restart_commands: dict[str, RestartCommand], max_processes: int) -> None:
        """A reloaded policy: faults from now on see it (a journalled restart keeps its own argv)."""
        self._restarts, self._max_processes = dict(restart_commands), max_processes

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
            if cgroup is None:  # an inactive unit: nothing to signal (a restart needs no process)
                if p.action is ProcessAction.RESTART_UNIT:
                    return []
                raise NotFound(f"{where}: unit {p.value} is not running (it has no cgroup)")
            if cgroup.resolve() == CGROUP_ROOT.resolve():
                raise PermissionDenied("cgroups", f"{where}: {p.value} resolves to the root cgroup (every process)")
            if not (cgroup / "cgroup.procs").is_file():
                raise NotFound(f"{where}: no cgroup {cgroup}")
            candidates = [pid for pid in self._cgroup_pids(cgroup) if self._ours(pid)]
            if not candidates and p.action is not ProcessAction.RESTART_UNIT:
                raise NotFound(f"{where}: no process of {p.value} {here}")
        procs = [x for pid in candidates if (x := identify(pid)) is not None]
        if not procs and p.action is not ProcessAction.RESTART_UNIT:
            raise NotFound(f"{where}: {p.value} exited meanwhile")
        if len(procs) > self._max_processes:
            raise PermissionDenied("max_processes", f"{where} {p.value!r} matches {len(procs)} processes; "
                                                    f"one fault may reach at most {self._max_processes}")
        return procs

    def _unit_cgroup(self, unit: str) -> Path | None:
        out = subprocess.run(["systemctl", "show", "-p", "LoadState", "-p", "ControlGroup", "--", unit],
                             capture_output=True, text=True, timeout=10)
        props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        if props.get("LoadState") != "loaded":
            raise NotFound(f"spec.process.target.unit: no unit {unit!r} ({props.get('LoadState', out.stderr.strip())})")
        cg = props.get("ControlGroup", "").strip("/")
        return CGROUP_ROOT / cg if cg else None

    # -- changes ---------------------------------------------------------
    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None:
        """Targets are found now (a bad one fails before anything happens); armed: act now too."""
        assert spec.process is not None
        applied = _Applied(spec.process, self.resolve(spec.process), [])
        with self._lock:
            # max_processes counts every process under any active PROCESS fault, not one request's.
            held = {(x.pid, x.start) for a in self._faults.values() for x in a.procs}
            total = len(held | {(x.pid, x.start) for x in applied.procs})
            if total > self._max_processes:
                raise PermissionDenied("max_processes", f"{total} processes would be under PROCESS faults at once "
                                                        f"({len(held)} already); at most {self._max_processes}")
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

    def lease(self, fault_id: str, deadline_ns: int) -> None:
        """Kept by the engine's lease timer (a watchdog that outlives the agent: not yet)."""

    def _arm(self, fault_id: str) -> None:
        with self._lock:
            a = self._faults[fault_id]
        a.armed = True
        p = a.spec
        if p.action is ProcessAction.RESTART_UNIT:
            # --no-block: queued, not waited for, so no slow unit holds the engine (and SIGTERM) up.
            out = subprocess.run(["systemctl", "restart", "--no-block", "--", p.value], capture_output=True, text=True,
                                 timeout=10)
            if out.returncode:
                raise KernelError(f"systemctl restart {p.value}: {out.stderr.strip()}")
            return
        ends = {ProcessAction.KILL: signal.SIGKILL, ProcessAction.STOP: signal.SIGTERM}
        sig = ends.get(p.action)
        if sig and p.restart:
            cmd = self._restarts.get(p.restart)
            if cmd is None:  # the policy checked it; a policy reloaded since could differ
                raise PermissionDenied("restart_commands", f"{p.restart!r} is not one of this host's restart commands")
            undo = {"op": "run", "name": p.restart, "argv": list(cmd.argv), "user": cmd.user, "netns": self._netns,
                    "log": str(self._state_dir / f"restart-{fault_id}.log"),
                    "after": [[x.pid, x.start] for x in a.procs]}
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
        """Every undo is tried; those that fail stay for the engine's retry (KernelError says which)."""
        with self._lock:
            a = self._faults.get(fault_id)
        if a is None:
            return Counters()
        failed = []
        for seq, undo in list(a.undos):
            if undo["op"] == "sigcont" and (other := self._paused_by_another(fault_id, undo)):
                # Overlapping PAUSEs of one process: it resumes when the last of them heals.
                log.info("%s: pid %d stays paused: %s still pauses it", fault_id, undo["pid"], other)
                self._rec.release(seq)
                a.undos.remove((seq, undo))
                continue
            try:
                log.info("%s: %s", fault_id, revert(undo))
            except Exception as e:  # a restart that cannot run must not keep a paused process paused
                failed.append(f"{undo['op']}: {type(e).__name__}: {e}")
                continue
            self._rec.release(seq)
            a.undos.remove((seq, undo))
        if failed:
            raise KernelError(f"{len(failed)} undo(s) of {fault_id} failed: {'; '.join(failed)}")
        with self._lock:
            self._faults.pop(fault_id, None)
        return self.counters_of(a)

    def _paused_by_another(self, fault_id: str, undo: dict[str, Any]) -> str:
        with self._lock:
            return next((fid for fid, a in self._faults.items() if fid != fault_id and a.armed
                         and any(u["op"] == "sigcont" and u["pid"] == undo["pid"] and u["start"] == undo["start"]
                                 for _, u in a.undos)), "")

    @staticmethod
    def counters_of(a: _Applied) -> Counters:
        return Counters(matched=len(a.procs), dropped=len(a.procs) if a.armed else 0)

    def counters(self, fault_id: str) -> Counters:
        with self._lock:
            a = self._faults.get(fault_id)
        return Counters() if a is None else self.counters_of(a)
