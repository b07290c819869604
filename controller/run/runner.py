"""Runs one scenario, orchestrating only: hosts and clocks, watches, the processes
(processes.py), steady state, the method on its schedule (method.py), recovery measured from
kernel events and probes (recovery.py), rollbacks that always run (rollbacks.py), and the
journal document (journal.py).

Every time in the journal is on the controller's CLOCK_REALTIME, in ns; agent stamps are
corrected by the offset measured with SyncClock (kept with its bound).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultline.controller.agents.client import AgentClient, AgentError, WatchRecorder
from faultline.controller.agents.clocksync import AgentClock, now_ns
from faultline.controller.agents.spec import watch_filter
from faultline.controller.env import ssh
from faultline.controller.env.hosts import Endpoint, connect, file_endpoints, lab_endpoints
from faultline.controller.env.lab import Lab, LabConfig
from faultline.controller.model.scenario import Probe, Scenario
from faultline.controller.run import journal as journal_doc
from faultline.controller.run import recovery
from faultline.controller.run.interrupt import Terminated
from faultline.controller.run.journal import Journal
from faultline.controller.run.method import Method, StepRefused
from faultline.controller.run.probes import FlowStates, Prober, ProbeResult
from faultline.controller.run.processes import Processes
from faultline.controller.run.rollbacks import roll_back

__all__ = ["Outcome", "RunOptions", "StepRefused", "default_out_dir", "run"]


@dataclass
class RunOptions:
    out_dir: Path
    lab_config: LabConfig = field(default_factory=LabConfig)
    keep_lab: bool = False
    event: Callable[[str], None] = lambda _: None    # one line per thing that happened
    status: Callable[[str], None] = lambda _: None   # the live progress line
    tls_dir: Path | None = None  # mTLS to real hosts' agents (else $FAULTLINE_TLS_DIR; a lab's is found)
    ssh_config: Path | None = None  # ssh -F for real hosts' processes and probes (else $FAULTLINE_SSH_CONFIG)


@dataclass
class Outcome:
    scenario: Scenario
    metrics: recovery.Metrics
    verdicts: list[recovery.Verdict]
    journal: dict[str, Any]
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return not self.interrupted and all(v.ok for v in self.verdicts)

    @property
    def status(self) -> str:
        """PASSED, FAILED (a verdict), ERROR (the run itself went wrong) or INTERRUPTED."""
        if "status" in self.journal:
            return str(self.journal["status"]).upper()
        return "INTERRUPTED" if self.interrupted else "PASSED" if self.passed else "FAILED"


class Run:
    def __init__(self, scenario: Scenario, options: RunOptions) -> None:
        self.scn, self.opt = scenario, options
        self.journal = Journal()
        self.run_dir = options.out_dir.resolve()  # processes may chdir (redis --dir)
        self.endpoints: dict[str, Endpoint] = {}
        self.clients: dict[str, AgentClient] = {}
        self.clocks: dict[str, AgentClock] = {}
        self.flows: dict[str, FlowStates] = {}
        self.recorders: dict[str, WatchRecorder] = {}
        self.processes = Processes(self.run_dir, self.journal, options.event)
        self.method = Method(scenario, self.endpoints, self.clients, self.clocks, self.resolve, self.journal,
                             options.event, options.status)
        self.samples: list[ProbeResult] = []
        self.counters: dict[str, int] = {}
        self.checks: list[recovery.Verdict] = []
        self.lab: Lab | None = None
        self.lab_made = False
        self._stop_poll = threading.Event()

    # -- placeholders and hosts ----------------------------------------------
    def resolve(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "python":
                return sys.executable
            if name == "run_dir":
                return str(self.run_dir)
            if name in ("inject_ns", "heal_ns"):
                return str(self.method.window()[name == "heal_ns"] or 0)
            host, _, attr = name.partition(".")
            ep = self.endpoints[host]
            return ep.ipv6 if attr == "ipv6" else ep.ipv4
        return re.sub(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}", one, text)

    def in_host(self, host: str, argv: Sequence[str]) -> list[str]:
        """argv run once on `host`: in its lab namespace, or over its ssh (a real host)."""
        if self.lab:
            return self.lab.exec_argv(host, argv)
        return ssh.command(self._ssh_target(host), argv, self.opt.ssh_config)

    def _ssh_target(self, host: str) -> str:
        target = self.scn.hosts[host].ssh
        if not target:  # the file check requires it; a host given otherwise may lack it
            raise RuntimeError(f"hosts.{host}.ssh is not set: nothing can run on {host}")
        return target

    def tcp_from(self, host: str, address: str, port: int, timeout_s: float) -> list[str]:
        """A TCP connect check taken on `host` (a `from:` probe)."""
        if self.lab:
            return self.lab.exec_argv(host, [sys.executable, "-c", ssh.TCP_CHECK, address, str(port),
                                             f"{timeout_s:g}"])
        return ssh.tcp_check(self._ssh_target(host), address, port, timeout_s, self.opt.ssh_config)

    def _hosts(self) -> None:
        if self.scn.lab:
            self.lab = Lab(self.opt.lab_config, progress=self.opt.event)
            before = self.lab.load()
            self.lab_made = before is None
            self.opt.event(f"lab up: {', '.join(self.scn.lab)}" + ("" if self.lab_made else " (reusing the lab)"))
            self.endpoints.update(lab_endpoints(self.lab.up(self.scn.lab), self.scn.lab))
            # Each lab host may restart only its own processes, as they were started (its policy).
            for host in self.scn.lab:
                self.lab.set_restart_commands(host, {p.name: [self.resolve(a) for a in p.argv]
                                                     for p in self.scn.processes if p.host == host})
        else:
            self.endpoints.update(file_endpoints(self.scn.hosts))
        for name, ep in self.endpoints.items():
            host = connect(ep, tls_dir=self.opt.tls_dir)
            self.clients[name], self.clocks[name] = host.client, host.clock
            clk = host.clock
            self.journal.record("clock", name, agent=ep.agent, offset_ns=clk.offset_ns,
                                uncertainty_ns=clk.uncertainty_ns, samples=clk.samples)
            self.opt.event(f"{name}: agent {ep.agent}, clock offset {clk}")

    def _watches(self) -> None:
        ports: dict[str, set[int]] = {}
        if self.scn.recovery.watch_host:
            ports.setdefault(self.scn.recovery.watch_host, set()).add(self.scn.recovery.watch_port)
        for p in self.scn.probes.values():
            if p.kind == "established":
                ports.setdefault(p.params["host"], set()).add(p.params["port"])
        for host, ps in ports.items():
            flows = FlowStates()
            w = self.clients[host].watch(watch_filter(recovery.WATCH_KINDS, sorted(ps), fault_counters=False),
                                         ready_timeout_s=30)
            self.flows[host] = flows
            self.recorders[host] = WatchRecorder(w, on_tcp=flows.feed)
            self.journal.record("watch", host, ports=sorted(ps), probes=list(w.watching.probes))

    # -- processes and probes ---------------------------------------------------
    def prober(self) -> Prober:
        return Prober(self.resolve, self.in_host, self.flows.get, self.tcp_from)

    def probe(self, probe: Probe, phase: str) -> ProbeResult:
        r = self.prober().run(probe)
        self.journal.record("probe", probe.name, phase=phase, ok=r.ok, detail=r.detail, counters=r.counters,
                            started_ns=r.started_ns, ended_ns=r.ended_ns)
        return r

    def _start_processes(self) -> None:
        for p in self.scn.processes:
            argv = [self.resolve(a) for a in p.argv]
            if p.host and not self.lab:  # over ssh, under the guard: it ends when this run does
                self.processes.start(p, ssh.guarded(self._ssh_target(p.host), argv, self.opt.ssh_config),
                                     remote=True)
            else:
                self.processes.start(p, self.in_host(p.host, argv) if p.host else argv)
            if p.ready:
                self.processes.wait_ready(p.name, self.scn.probes[p.ready], self.prober().run)

    def _steady_state(self, phase: str) -> bool:
        ok = True
        for name in self.scn.steady_state:
            r = self.probe(self.scn.probes[name], phase)
            self.checks.append(recovery.Verdict(f"steady state {phase}: {name}", r.ok, r.detail))
            self.opt.event(f"steady state {phase}: {'✓' if r.ok else '✗'} {name}: {r.detail}")
            ok = ok and r.ok
        return ok

    def _poll(self, probe: Probe) -> None:
        while not self._stop_poll.is_set():
            r = self.prober().run(probe)
            self.samples.append(r)
            self._stop_poll.wait(max(0.0, self.scn.recovery.poll_s - (r.ended_ns - r.started_ns) / 1e9))

    # -- recovery ----------------------------------------------------------------
    def kernel_events(self) -> list[recovery.KernelEvent]:
        out = [e for host, rec in self.recorders.items()
               for e in recovery.kernel_events(host, self.clocks[host], rec.tcp())]
        return sorted(out, key=lambda e: e.t_ns)

    def metrics(self) -> recovery.Metrics:
        t_inject, t_heal = self.method.window()
        events = [e for e in self.kernel_events() if e.host == self.scn.recovery.watch_host] \
            if self.scn.recovery.watch_host else None
        samples = list(self.samples) if self.scn.recovery.probe else None
        return recovery.compute(self.scn.targets, t_inject, t_heal, events, samples, self.counters)

    def _await_recovery(self) -> None:
        timeout = self.scn.recovery.timeout_s or 2 * self.scn.targets.rto_s
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.metrics()
            if m.t_recovered is not None or m.t_inject is None:
                return
            time.sleep(0.05)
        self.opt.event(f"no recovery within {timeout:g} s of the heal")

    # -- the whole run -------------------------------------------------------------
    def execute(self) -> Outcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = now_ns()
        interrupted, error = False, ""
        poller: threading.Thread | None = None
        try:
            self._hosts()
            self._watches()
            self._start_processes()
            if self._steady_state("before"):
                if self.scn.recovery.probe:
                    poller = threading.Thread(target=self._poll, args=(self.scn.probes[self.scn.recovery.probe],),
                                              daemon=True)
                    poller.start()
                self.method.run(self._stop_poll)
                self._await_recovery()
                time.sleep(self.scn.settle_s)
                self._steady_state("after")
            else:
                self.opt.event("steady state before does not hold: the method is not run")
        except KeyboardInterrupt as e:
            interrupted = True
            how = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
            self.opt.event(f"interrupted ({how}): rolling back; Ctrl-C and SIGTERM are ignored until that is done")
        except (AgentError, RuntimeError, TimeoutError, OSError, StepRefused) as e:
            error = str(e)
            self.opt.event(f"error: {e}")
        except Exception as e:  # a bug (ours or a step's): this scenario is ERROR, its files still written
            error = f"{type(e).__name__}: {e}"
            self.journal.record("error", "controller", error=error, traceback=traceback.format_exc()[-4000:])
            self.opt.event(f"ERROR: {error} (the traceback is in the journal)")
        finally:
            self._stop_poll.set()
            # Neither Ctrl-C nor SIGTERM may cut the rollback short: it is what heals the faults.
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)} \
                if threading.current_thread() is threading.main_thread() else {}
            try:
                rollback_ok = roll_back(self.method, self.scn.rollbacks, self.clients, self.resolve, self.in_host,
                                        self.journal, self.opt.event)
                self.processes.stop_all()
                if self.scn.data_loss and not interrupted and not error:
                    r = self.probe(self.scn.probes[self.scn.data_loss], "data loss")
                    self.counters = r.counters
                if poller:
                    poller.join(timeout=5)
                for rec in self.recorders.values():
                    rec.stop()
                metrics = self.metrics()
                verdicts = self._verdicts(metrics, rollback_ok, error, interrupted)
                journal = journal_doc.document(
                    self.scn, self.journal, started_ns=started, t0_ns=self.method.t0, interrupted=interrupted,
                    error=error, endpoints=self.endpoints, clocks=self.clocks, steps=self.method.steps,
                    kernel_events=self.kernel_events(), samples=self.samples, metrics=metrics, verdicts=verdicts)
                self._close()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return Outcome(self.scn, metrics, verdicts, journal, interrupted)

    def _verdicts(self, m: recovery.Metrics, rollback_ok: bool, error: str,
                  interrupted: bool) -> list[recovery.Verdict]:
        out = list(self.checks)
        if error or interrupted:
            out.append(recovery.Verdict("completed", False, error or "interrupted by Ctrl-C"))
        if m.t_inject is not None:
            out += recovery.verdicts(m, self.scn.targets)
        out.append(recovery.Verdict("rollbacks", rollback_ok, "every fault healed" if rollback_ok
                                    else "a rollback failed (see the journal)"))
        return out

    def _close(self) -> None:
        for c in self.clients.values():
            c.close()
        if self.lab and self.lab_made and not self.opt.keep_lab:
            for line in self.lab.down():
                self.opt.event(line)


def run(scenario: Scenario, options: RunOptions) -> Outcome:
    return Run(scenario, options).execute()


def default_out_dir(scenario: Scenario) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return Path("build/runs") / f"{stamp}-{Path(scenario.path).stem}-{os.getpid()}"
