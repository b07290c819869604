"""A scenario's processes: started (in their lab host's namespace, or here), each with its log
in the run's directory, waited for by their ready probe, and stopped at the end so a workload
drains and writes its final counters."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from faultline.controller.model.scenario import Probe, Process
from faultline.controller.run.journal import Journal
from faultline.controller.run.probes import ProbeResult

# A process's ready probe: ~0.3 s here, ~5 s under TCG, over 15 s under TCG on a loaded host.
# A deadline on a condition: a long one costs nothing when the process is quick.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


# A local process gets SIGTERM when this controller dies, even by SIGKILL (a dead run's workload
# must not hold the lab): setpriv sets the parent-death signal and execs it, and the setting is kept
# across `ip netns exec`'s exec. (Not a preexec_fn: Python code between fork and exec in a threaded
# process, gRPC's, segfaulted.)
END_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"]


class Processes:
    def __init__(self, run_dir: Path, journal: Journal, event: Callable[[str], None]) -> None:
        self.run_dir, self.journal, self.event = run_dir, journal, event
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, p: Process, argv: list[str], remote: bool = False) -> None:
        """argv: the process's command, resolved and wrapped to run in its host. remote: an ssh
        under env/ssh.py's guard, whose stdin is the process's lifeline (closed: it stops; this
        controller gone: it closes with it)."""
        log = self.run_dir / f"{p.name}.log"
        argv = argv if remote else [*END_WITH_PARENT, *argv]
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.running[p.name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.PIPE if remote else subprocess.DEVNULL,
                                                    start_new_session=True)
        self.journal.record("process", p.name, action="start", pid=self.running[p.name].pid, argv=argv, host=p.host,
                            over="ssh" if remote else "")
        where = f"{p.host} over ssh" if remote else p.host or "the controller"
        self.event(f"process {p.name} started on {where} (log {log})")

    def wait_ready(self, name: str, probe: Probe, run_probe: Callable[[Probe], ProbeResult]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            r = run_probe(probe)
            if r.ok:
                self.journal.record("process", name, action="ready", probe=probe.name, detail=r.detail)
                return
            if self.running[name].poll() is not None:
                raise RuntimeError(f"process {name} exited ({self.running[name].returncode}) before "
                                   f"{probe.name} passed; see {self.run_dir / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {name}: probe {probe.name} still failing after "
                                   f"{READY_TIMEOUT_S:g} s: {r.detail}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        """Last started, first stopped: SIGTERM, then SIGKILL if it does not exit in time."""
        for name, proc in reversed(list(self.running.items())):
            if proc.poll() is None and proc.stdin is not None:  # over ssh: EOF is its SIGTERM
                proc.stdin.close()
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.journal.record("process", name, action="stop", returncode=proc.returncode)
