"""Runs one scenario: hosts and clocks, processes, steady state, the method on a schedule with
coordinated starts, recovery measured from kernel events and probes, rollbacks that always
run (error, failed assertion or Ctrl-C), and a journal of everything with timestamps.

Every time in the journal is on the controller's CLOCK_REALTIME, in ns; agent stamps are
corrected by the offset measured with SyncClock (kept with its bound).

Over 300 lines: the Run class still holds processes, watches, the method's schedule, rollbacks
and the journal document; moving each to its own module is not done yet.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

import faultline
from faultline.controller.agents import coordinate
from faultline.controller.agents.client import (
    AgentClient,
    AgentError,
    WatchRecorder,
    fault_spec,
    process_spec,
    watch_filter,
)
from faultline.controller.agents.clocksync import AgentClock, now_ns, sleep_until
from faultline.controller.env.hosts import Endpoint, connect, lab_endpoints
from faultline.controller.env.lab import Lab, LabConfig
from faultline.controller.model.scenario import Probe, Scenario, Step
from faultline.controller.run import recovery
from faultline.controller.run.probes import FlowStates, Prober, ProbeResult
from faultline.v1 import agent_pb2 as pb

# A process's ready probe: ~0.3 s here, ~5 s under TCG, over 15 s under TCG on a loaded host.
# A deadline on a condition: a long one costs nothing when the process is quick.
READY_TIMEOUT_S = 60.0


@dataclass
class RunOptions:
    out_dir: Path
    lab_config: LabConfig = field(default_factory=LabConfig)
    keep_lab: bool = False
    event: Callable[[str], None] = lambda _: None    # one line per thing that happened
    status: Callable[[str], None] = lambda _: None   # the live progress line


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


class Journal:
    """Everything that happened, in order, each with its controller-clock time."""

    def __init__(self) -> None:
        self.activities: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, kind: str, name: str, **fields: Any) -> dict[str, Any]:
        entry = {"t_ns": now_ns(), "kind": kind, "name": name, **fields}
        with self._lock:
            self.activities.append(entry)
        return entry


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
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.applied: dict[str, list[coordinate.Applied]] = {}  # step index -> faults
        self.healed: dict[str, int] = {}                         # fault id -> healed at (controller clock)
        self.steps: list[dict[str, Any]] = []
        self.samples: list[ProbeResult] = []
        self.counters: dict[str, int] = {}
        self.checks: list[recovery.Verdict] = []
        self.lab: Lab | None = None
        self.lab_made = False
        self.t0 = 0
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
                return str(self.window()[name == "heal_ns"] or 0)
            host, _, attr = name.partition(".")
            ep = self.endpoints[host]
            return ep.ipv6 if attr == "ipv6" else ep.ipv4
        return re.sub(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}", one, text)

    def in_host(self, host: str, argv: Sequence[str]) -> list[str]:
        return self.lab.exec_argv(host, argv) if self.lab else list(argv)

    def _hosts(self) -> None:
        if self.scn.lab:
            self.lab = Lab(self.opt.lab_config, progress=self.opt.event)
            before = self.lab.load()
            self.lab_made = before is None
            self.opt.event(f"lab up: {', '.join(self.scn.lab)}" + ("" if self.lab_made else " (reusing the lab)"))
            self.endpoints = lab_endpoints(self.lab.up(self.scn.lab), self.scn.lab)
            # Each lab host may restart only its own processes, as they were started (its policy).
            for host in self.scn.lab:
                self.lab.set_restart_commands(host, {p.name: [self.resolve(a) for a in p.argv]
                                                     for p in self.scn.processes if p.host == host})
        else:
            self.endpoints = {n: Endpoint(n, h.agent, h.ipv4, h.ipv6, h.interface) for n, h in self.scn.hosts.items()}
        for name, ep in self.endpoints.items():
            host = connect(ep)
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
        return Prober(self.resolve, self.in_host, self.flows.get)

    def probe(self, probe: Probe, phase: str) -> ProbeResult:
        r = self.prober().run(probe)
        self.journal.record("probe", probe.name, phase=phase, ok=r.ok, detail=r.detail, counters=r.counters,
                            started_ns=r.started_ns, ended_ns=r.ended_ns)
        return r

    def _start_processes(self) -> None:
        for p in self.scn.processes:
            argv = [self.resolve(a) for a in p.argv]
            if p.host:
                argv = self.in_host(p.host, argv)
            log = self.run_dir / f"{p.name}.log"
            with log.open("wb") as out:  # the child keeps its own copy of the descriptor
                self.processes[p.name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                          stdin=subprocess.DEVNULL, start_new_session=True)
            self.journal.record("process", p.name, action="start", pid=self.processes[p.name].pid, argv=argv,
                                host=p.host)
            self.opt.event(f"process {p.name} started on {p.host or 'the controller'} (log {log})")
            if p.ready:
                self._wait_ready(p.name, self.scn.probes[p.ready])

    def _wait_ready(self, name: str, probe: Probe) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            r = self.prober().run(probe)
            if r.ok:
                self.journal.record("process", name, action="ready", probe=probe.name, detail=r.detail)
                return
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"process {name} exited ({self.processes[name].returncode}) before "
                                   f"{probe.name} passed; see {self.run_dir / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {name}: probe {probe.name} still failing after "
                                   f"{READY_TIMEOUT_S:g} s: {r.detail}")
            time.sleep(0.1)

    def _stop_processes(self) -> None:
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                proc.terminate()  # the workload drains and writes its final counters
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.journal.record("process", name, action="stop", returncode=proc.returncode)

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

    # -- the method --------------------------------------------------------------
    def specs(self, step: Step) -> list[tuple[str, pb.FaultSpec]]:
        lease = step.duration_s + coordinate.LEASE_SLACK_S
        label = f"{Path(self.scn.path).stem} step {step.index}"

        def addrs(hosts: Sequence[str]) -> list[str]:
            return [c for h in hosts for c in self.endpoints[h].cidrs()]

        if step.kind == "partition":
            a, b = step.params["a"], step.params["b"]
            return [(h, fault_spec("disconnect", self.endpoints[h].interface, peers=addrs(other),
                                   direction="both", lease_s=lease, label=label))
                    for side, other in ((a, b), (b, a)) for h in side]
        p = step.params
        if p["kind"] == "process":
            target = {k: (self.resolve(v) if isinstance(v, str) else v) for k, v in p["target"].items()}
            return [(h, process_spec(p["action"], lease, label=label, **target, restart=p.get("restart", "")))
                    for h in p["hosts"]]
        peers = [self.resolve(x) for x in p.get("peers", [])] + addrs(p.get("peer_hosts", []))
        if p["kind"] == "reset":
            return [(h, fault_spec("reset", "", peers=peers, ports=p.get("ports", []), lease_s=lease, label=label))
                    for h in p["hosts"]]
        return [(h, fault_spec(
            p["kind"], self.endpoints[h].interface, peers=peers, ports=p.get("ports", []),
            direction=p.get("direction", ""), protocol=p.get("protocol", "any"), lease_s=lease,
            loss_percent=p.get("loss_percent"), mechanism=p.get("mechanism", "auto"), label=label,
            percent=p.get("percent", 0.0), delay_ms=p.get("delay_ms", 0.0), jitter_ms=p.get("jitter_ms", 0.0),
            rate_bps=p.get("rate_bps", 0))) for h in p["hosts"]]

    def describe(self, step: Step) -> str:
        if step.kind == "partition":
            return f"partition {','.join(step.params['a'])} | {','.join(step.params['b'])}"
        if step.kind == "wait":
            return "wait"
        if step.params["kind"] == "process":
            return f"{step.params['action']} {next(iter(step.params['target'].values()))} on" \
                   f" {','.join(step.params['hosts'])}"
        return f"{step.params['kind']} on {','.join(step.params['hosts'])}"

    def _method(self) -> None:
        schedule = self.scn.schedule()
        actions = sorted([(start, 1, s) for start, _, s in schedule if s.kind != "wait"]
                         + [(end, 0, s) for _, end, s in schedule if s.kind != "wait"], key=lambda a: a[:2])
        end_s = max(e for _, e, _ in schedule)
        self.t0 = now_ns() + int(coordinate.DEFAULT_LEAD_S * 1e9)
        self.journal.record("method", "start", t0_ns=self.t0, schedule=[
            {"step": s.index, "what": self.describe(s), "start_s": a, "end_s": b} for a, b, s in schedule])
        ticker = threading.Thread(target=self._tick, args=(schedule,), daemon=True)
        ticker.start()
        for at_s, is_apply, step in actions:
            planned = self.t0 + int(at_s * 1e9)
            if is_apply:
                sleep_until(planned - int(coordinate.DEFAULT_LEAD_S * 1e9))
                self._apply(step, planned)
            else:
                sleep_until(planned)
                self._heal(step)
        sleep_until(self.t0 + int(end_s * 1e9))

    def _apply(self, step: Step, planned_ns: int) -> None:
        targets = [coordinate.Target(h, self.clients[h], self.clocks[h], spec) for h, spec in self.specs(step)]
        if now_ns() > planned_ns:
            planned_ns = now_ns() + int(coordinate.DEFAULT_LEAD_S * 1e9)  # an earlier step overran: start late
        landed = self.applied.setdefault(str(step.index), [])
        applied, refused = coordinate.apply_at(targets, planned_ns, on_applied=landed.append)
        skew = coordinate.skew_ns(applied)
        entry = {"step": step.index, "what": self.describe(step), "planned_ns": planned_ns, "skew_ns": skew,
                 "specs": {t.host: MessageToDict(t.spec, preserving_proto_field_name=True) for t in targets},
                 "applied": [asdict(a) for a in applied],
                 "refused": [{"host": r.host, "code": r.error.code.name, "message": r.error.message}
                             for r in refused]}
        self.steps.append(entry)
        self.journal.record("apply", self.describe(step), **{k: v for k, v in entry.items() if k != "what"})
        hosts = ", ".join(f"{a.host} {a.fault_id} {(a.applied_ns - planned_ns) / 1e6:+.3f} ms" for a in applied)
        self.opt.event(f"{self._rel(planned_ns)} {self.describe(step)} for {step.duration_s:g} s: {hosts}; "
                       f"skew {skew / 1e6:.3f} ms")
        for r in refused:
            self.opt.event(f"  refused on {r.host}: {r.error}")
        if refused:
            raise StepRefused(f"step {step.index} ({self.describe(step)}) refused: "
                              + "; ".join(f"{r.host}: {r.error.message}" for r in refused))

    def _heal(self, step: Step) -> None:
        for a in self.applied.get(str(step.index), []):
            self._heal_one(a.host, a.fault_id, "heal")
        self.opt.event(f"{self._rel(now_ns())} healed {self.describe(step)}")

    def _heal_one(self, host: str, fault_id: str, why: str) -> None:
        if fault_id in self.healed:
            return
        try:
            f = self.clients[host].heal(fault_id)
            t = self.clocks[host].to_controller(f.healed_at.realtime_ns)
            self.journal.record(why, host, fault_id=fault_id, healed_agent_ns=f.healed_at.realtime_ns, healed_ns=t,
                                matched=f.counters.matched, dropped=f.counters.dropped)
        except AgentError as e:
            if e.code.name != "NOT_FOUND":
                raise
            t = now_ns()
            self.journal.record(why, host, fault_id=fault_id, note="already healed (lease ran out)")
        self.healed[fault_id] = t

    def _rel(self, t_ns: int) -> str:
        return f"[{(t_ns - self.t0) / 1e9:+8.3f} s]"

    def _tick(self, schedule: list[tuple[float, float, Step]]) -> None:
        end_s = max(e for _, e, _ in schedule)
        while not self._stop_poll.is_set():
            el = (now_ns() - self.t0) / 1e9
            active = [(s, e, st) for s, e, st in schedule if s <= el < e]
            what = "; ".join(f"step {st.index + 1}/{len(schedule)} {self.describe(st)}, {e - el:.1f} s left"
                             for s, e, st in active) or ("waiting for recovery" if el >= end_s else "between steps")
            self.opt.status(f"{self.scn.title}: {el:6.1f} s elapsed | {what}")
            self._stop_poll.wait(0.25)

    # -- recovery ----------------------------------------------------------------
    def kernel_events(self) -> list[recovery.KernelEvent]:
        out = [e for host, rec in self.recorders.items()
               for e in recovery.kernel_events(host, self.clocks[host], rec.tcp())]
        return sorted(out, key=lambda e: e.t_ns)

    def window(self) -> tuple[int | None, int | None]:
        """The first inject and the last heal (None until they happen), controller clock."""
        applied = [a for faults in self.applied.values() for a in faults]
        t_inject = min((a.applied_ns for a in applied), default=None)
        ids = [a.fault_id for a in applied]
        t_heal = max(self.healed[i] for i in ids) if ids and all(i in self.healed for i in ids) else None
        return t_inject, t_heal

    def metrics(self) -> recovery.Metrics:
        t_inject, t_heal = self.window()
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
                self._method()
                self._await_recovery()
                time.sleep(self.scn.settle_s)
                self._steady_state("after")
            else:
                self.opt.event("steady state before does not hold: the method is not run")
        except KeyboardInterrupt:
            interrupted = True
            self.opt.event("interrupted (Ctrl-C): rolling back; Ctrl-C again is ignored until that is done")
        except (AgentError, RuntimeError, TimeoutError, OSError, StepRefused) as e:
            error = str(e)
            self.opt.event(f"error: {e}")
        except Exception as e:  # a bug (ours or a step's): this scenario is ERROR, its files still written
            error = f"{type(e).__name__}: {e}"
            self.journal.record("error", "controller", error=error, traceback=traceback.format_exc()[-4000:])
            self.opt.event(f"ERROR: {error} (the traceback is in the journal)")
        finally:
            self._stop_poll.set()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) \
                if threading.current_thread() is threading.main_thread() else None
            try:
                rollback_ok = self._rollbacks()
                self._stop_processes()
                if self.scn.data_loss and not interrupted and not error:
                    r = self.probe(self.scn.probes[self.scn.data_loss], "data loss")
                    self.counters = r.counters
                if poller:
                    poller.join(timeout=5)
                for rec in self.recorders.values():
                    rec.stop()
                metrics = self.metrics()
                verdicts = self._verdicts(metrics, rollback_ok, error, interrupted)
                journal = self._journal(started, metrics, verdicts, interrupted, error)
                self._close()
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)
        return Outcome(self.scn, metrics, verdicts, journal, interrupted)

    def _rollbacks(self) -> bool:
        """Heal whatever this run applied and has not healed, then the file's rollbacks. Always."""
        ok = True
        for step, faults in self.applied.items():
            for a in faults:
                if a.fault_id not in self.healed:
                    try:
                        self._heal_one(a.host, a.fault_id, "rollback")
                        self.opt.event(f"rollback: healed {a.fault_id} on {a.host} (step {step})")
                    except AgentError as e:
                        ok = False
                        self.journal.record("rollback", a.host, fault_id=a.fault_id, error=str(e))
                        self.opt.event(f"rollback FAILED on {a.host}: {e} (its lease heals it)")
        for rb in self.scn.rollbacks:
            try:
                if rb.kind == "heal_all":
                    for h in rb.hosts:
                        healed = self.clients[h].heal_all()
                        self.journal.record("rollback", h, action="heal_all", healed=[f.fault_id for f in healed])
                else:
                    argv = [self.resolve(a) for a in rb.argv]
                    r = subprocess.run(self.in_host(rb.host, argv) if rb.host else argv, capture_output=True,
                                       text=True, timeout=60, check=False)
                    self.journal.record("rollback", rb.host or "controller", argv=argv, returncode=r.returncode,
                                        output=(r.stdout + r.stderr)[-500:])
                    ok = ok and r.returncode == 0
            except (AgentError, OSError, subprocess.TimeoutExpired, KeyError) as e:
                ok = False
                self.journal.record("rollback", rb.kind, error=str(e))
        return ok

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

    def _journal(self, started: int, m: recovery.Metrics, verdicts: list[recovery.Verdict], interrupted: bool,
                 error: str) -> dict[str, Any]:
        return {
            "faultline": faultline.__version__, "controller_host": socket.gethostname(),
            "platform": platform.platform(), "python": sys.version.split()[0],
            "clock": "controller CLOCK_REALTIME, ns; agent stamps corrected by the SyncClock offset",
            "scenario": {"path": self.scn.path, "title": self.scn.title, "fault_type": self.scn.fault_type,
                         "targets": asdict(self.scn.targets), "method": [asdict(s) for s in self.scn.method],
                         "recovery": asdict(self.scn.recovery)},
            "started_ns": started, "ended_ns": now_ns(), "t0_ns": self.t0,
            "status": "interrupted" if interrupted else "error" if error else
                      "passed" if all(v.ok for v in verdicts) else "failed",
            "error": error,
            "hosts": {n: asdict(e) for n, e in self.endpoints.items()},
            "clocks": {n: asdict(c) for n, c in self.clocks.items()},
            "steps": self.steps,
            "activities": self.journal.activities,
            "kernel_events": [asdict(e) for e in self.kernel_events()],
            "probe_samples": [asdict(s) for s in self.samples],
            "metrics": m.as_dict(),
            "verdicts": [asdict(v) for v in verdicts],
        }

    def _close(self) -> None:
        for c in self.clients.values():
            c.close()
        if self.lab and self.lab_made and not self.opt.keep_lab:
            for line in self.lab.down():
                self.opt.event(line)


class StepRefused(Exception):
    """An agent refused a step's fault: the run stops and rolls back."""


def run(scenario: Scenario, options: RunOptions) -> Outcome:
    return Run(scenario, options).execute()


def default_out_dir(scenario: Scenario) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return Path("build/runs") / f"{stamp}-{Path(scenario.path).stem}-{os.getpid()}"
