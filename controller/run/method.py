"""The method on its schedule: each step's faults built for its hosts, applied with a
coordinated start at the step's offset, healed at its end, with a live progress line.

Keeps what landed (fault ids per step) and when each was healed, on the controller's clock,
so recovery is measured from the first inject and the last heal, and rollbacks know what is
still in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from faultline.controller.agents import coordinate
from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.agents.clocksync import AgentClock, now_ns, sleep_until
from faultline.controller.agents.format import spec_dict
from faultline.controller.agents.spec import Disconnect, FaultSpec, Reset, fault_spec, process_spec
from faultline.controller.env.hosts import Endpoint
from faultline.controller.model.scenario import Scenario
from faultline.controller.model.steps import Partition, ProcessFault, ResetFault, Step, Wait
from faultline.controller.run.journal import Journal

TICK_S = 0.25


class StepRefused(Exception):
    """An agent refused a step's fault: the run stops and rolls back."""


class Method:
    def __init__(self, scn: Scenario, endpoints: dict[str, Endpoint], clients: dict[str, AgentClient],
                 clocks: dict[str, AgentClock], resolve: Callable[[str], str], journal: Journal,
                 event: Callable[[str], None], status: Callable[[str], None]) -> None:
        self.scn, self.endpoints, self.clients, self.clocks = scn, endpoints, clients, clocks
        self.resolve, self.journal, self.event, self.status = resolve, journal, event, status
        self.applied: dict[str, list[coordinate.Accepted]] = {}  # step index -> faults taken
        self.started: dict[str, list[coordinate.Applied]] = {}  # step index -> faults acting, when
        self.healed: dict[str, int] = {}                         # fault id -> healed at (controller clock)
        self.steps: list[dict[str, Any]] = []                    # what each step applied: the journal's steps
        self.t0 = 0

    # -- one step's faults ---------------------------------------------------------
    def specs(self, step: Step) -> list[tuple[str, FaultSpec]]:
        lease = step.duration_s + coordinate.LEASE_SLACK_S
        label = f"{Path(self.scn.path).stem} step {step.index}"

        def addrs(hosts: Sequence[str]) -> list[str]:
            return [c for h in hosts for c in self.endpoints[h].cidrs()]

        a = step.action
        if isinstance(a, Partition):
            return [(h, fault_spec(Disconnect(), self.endpoints[h].interface, peers=addrs(other), direction="both",
                                   lease_s=lease, label=label))
                    for side, other in ((a.a, a.b), (a.b, a.a)) for h in side]
        if isinstance(a, ProcessFault):
            target = {k: (self.resolve(v) if isinstance(v, str) else v) for k, v in a.target.items()}
            return [(h, process_spec(a.action, lease, label=label, **target, restart=a.restart)) for h in a.hosts]
        if isinstance(a, Wait):
            return []
        peers = [self.resolve(x) for x in a.peers] + addrs(a.peer_hosts)
        if isinstance(a, ResetFault):
            return [(h, fault_spec(Reset(), "", peers=peers, ports=a.ports, lease_s=lease, label=label))
                    for h in a.hosts]
        return [(h, fault_spec(
            a.params(), self.endpoints[h].interface, peers=peers, ports=a.ports, direction=a.direction,
            protocol=a.protocol, lease_s=lease, mechanism=a.mechanism, label=label)) for h in a.hosts]

    # -- the schedule ----------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Every step at its offset from t0 (a little ahead, so each host's start is coordinated);
        returns when the last step has ended. `stop` ends the progress line."""
        schedule = self.scn.schedule()
        actions = sorted([(start, 1, s) for start, _, s in schedule if s.kind != "wait"]
                         + [(end, 0, s) for _, end, s in schedule if s.kind != "wait"], key=lambda a: a[:2])
        end_s = max(e for _, e, _ in schedule)
        self.t0 = now_ns() + int(coordinate.DEFAULT_LEAD_S * 1e9)
        self.journal.record("method", "start", t0_ns=self.t0, schedule=[
            {"step": s.index, "what": s.describe(), "start_s": a, "end_s": b} for a, b, s in schedule])
        threading.Thread(target=self._tick, args=(schedule, stop), daemon=True).start()
        for at_s, is_apply, step in actions:
            planned = self.t0 + int(at_s * 1e9)
            if is_apply:
                sleep_until(planned - int(coordinate.DEFAULT_LEAD_S * 1e9))
                self.apply(step, planned)
            else:
                sleep_until(planned)
                self.heal(step)
        sleep_until(self.t0 + int(end_s * 1e9))

    def apply(self, step: Step, planned_ns: int) -> None:
        targets = [coordinate.Target(h, self.clients[h], self.clocks[h], spec) for h, spec in self.specs(step)]
        if now_ns() > planned_ns:
            planned_ns = now_ns() + int(coordinate.DEFAULT_LEAD_S * 1e9)  # an earlier step overran: start late
        landed = self.applied.setdefault(str(step.index), [])
        applied, refused = coordinate.apply_at(targets, planned_ns, on_accepted=landed.append)
        self.started[str(step.index)] = applied
        skew = coordinate.skew_ns(applied)
        entry = {"step": step.index, "what": step.describe(), "planned_ns": planned_ns, "skew_ns": skew,
                 "specs": {t.host: spec_dict(t.spec) for t in targets},
                 "applied": [asdict(a) for a in applied],
                 "refused": [{"host": r.host, "code": r.error.code.name, "message": r.error.message}
                             for r in refused]}
        self.steps.append(entry)
        self.journal.record("apply", step.describe(), **{k: v for k, v in entry.items() if k != "what"})
        hosts = ", ".join(f"{a.host} {a.fault_id} {(a.applied_ns - planned_ns) / 1e6:+.3f} ms" for a in applied)
        self.event(f"{self.rel(planned_ns)} {step.describe()} for {step.duration_s:g} s: {hosts}; "
                   f"skew {skew / 1e6:.3f} ms")
        for r in refused:
            self.event(f"  refused on {r.host}: {r.error}")
        if refused:
            raise StepRefused(f"step {step.index} ({step.describe()}) refused: "
                              + "; ".join(f"{r.host}: {r.error.message}" for r in refused))

    def heal(self, step: Step) -> None:
        for a in self.applied.get(str(step.index), []):
            self.heal_one(a.host, a.fault_id, "heal")
        self.event(f"{self.rel(now_ns())} healed {step.describe()}")

    def heal_one(self, host: str, fault_id: str, why: str) -> None:
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

    def unhealed(self) -> list[tuple[str, coordinate.Accepted]]:
        """(step, fault) for every fault that landed and is not healed yet."""
        return [(step, a) for step, faults in self.applied.items() for a in faults if a.fault_id not in self.healed]

    def window(self) -> tuple[int | None, int | None]:
        """The first inject and the last heal (None until they happen), controller clock."""
        t_inject = min((a.applied_ns for faults in self.started.values() for a in faults), default=None)
        ids = [a.fault_id for faults in self.applied.values() for a in faults]
        t_heal = max(self.healed[i] for i in ids) if ids and all(i in self.healed for i in ids) else None
        return t_inject, t_heal

    def rel(self, t_ns: int) -> str:
        return f"[{(t_ns - self.t0) / 1e9:+8.3f} s]"

    def _tick(self, schedule: list[tuple[float, float, Step]], stop: threading.Event) -> None:
        end_s = max(e for _, e, _ in schedule)
        while not stop.is_set():
            el = (now_ns() - self.t0) / 1e9
            active = [(s, e, st) for s, e, st in schedule if s <= el < e]
            what = "; ".join(f"step {st.index + 1}/{len(schedule)} {st.describe()}, {e - el:.1f} s left"
                             for s, e, st in active) or ("waiting for recovery" if el >= end_s else "between steps")
            self.status(f"{self.scn.title}: {el:6.1f} s elapsed | {what}")
            stop.wait(TICK_S)
