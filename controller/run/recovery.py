"""Recovery metrics of one run, from what was observed, all on the controller's clock.

t_inject: the first fault applied. t_detect: the first symptom after it, the earlier of two
kept apart: network detection (the kernel's: a retransmit, a reset, a watched connection leaving
ESTABLISHED) and application detection (a failing probe: what a client of the system saw).
t_heal: the last fault healed. t_recovered: every recovery signal back - the watched
flow ESTABLISHED again (the heal itself if it never broke) and the probe passing again.
Pure functions over plain values, so the rules are tested without a lab.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from faultline.controller.agents.clocksync import AgentClock
from faultline.controller.agents.events import ESTABLISHED, TcpEvent
from faultline.controller.model.scenario import Targets
from faultline.controller.run.probes import ProbeResult

# What a recovery watch asks the agent for: everything but RTT samples.
WATCH_KINDS = ("state", "retransmit", "reset-sent", "reset-received")
MIN_CONTINUITY_PERMILLE = 950  # the chaos suite's market-data continuity target: >= 95 %


@dataclass(frozen=True)
class KernelEvent:
    t_ns: int            # controller clock
    host: str
    kind: str            # STATE, RETRANSMIT, RESET_SENT, RESET_RECEIVED
    socket: int
    old_state: str = ""
    new_state: str = ""
    flow: str = ""

    @property
    def symptom(self) -> bool:
        return self.kind in ("RETRANSMIT", "RESET_SENT", "RESET_RECEIVED") or (
            self.kind == "STATE" and self.old_state == ESTABLISHED)

    def __str__(self) -> str:
        what = f"{self.old_state} -> {self.new_state}" if self.kind == "STATE" else self.kind
        return f"{self.host}: {what} {self.flow}"


def kernel_events(host: str, clock: AgentClock, events: Sequence[TcpEvent]) -> list[KernelEvent]:
    """A watch stream's TCP events, on the controller's clock."""
    return [KernelEvent(clock.to_controller(e.realtime_ns), host, e.kind, e.socket, e.old_state, e.new_state, e.flow)
            for e in events]


@dataclass(frozen=True)
class Mark:
    t_ns: int
    source: str


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    detail: str


@dataclass
class Metrics:
    rto_s: float
    t_inject: int | None = None
    t_detect: Mark | None = None
    t_heal: int | None = None
    t_recovered: Mark | None = None
    counters: dict[str, int] = field(default_factory=dict)
    rto_from: str = "inject"  # or "heal": see scenario.Targets
    t_detect_network: Mark | None = None  # the kernel's first symptom
    t_detect_app: Mark | None = None      # a probe's first failure

    def _span(self, a: int | None, b: int | None) -> float | None:
        return (b - a) / 1e9 if a is not None and b is not None else None

    @property
    def detection_s(self) -> float | None:
        return self._span(self.t_inject, self.t_detect.t_ns if self.t_detect else None)

    @property
    def recovery_s(self) -> float | None:
        """Inject -> recovered: what the RTO bounds."""
        return self._span(self.t_inject, self.t_recovered.t_ns if self.t_recovered else None)

    @property
    def outage_s(self) -> float | None:
        return self._span(self.t_detect.t_ns if self.t_detect else None,
                          self.t_recovered.t_ns if self.t_recovered else None)

    @property
    def after_heal_s(self) -> float | None:
        return self._span(self.t_heal, self.t_recovered.t_ns if self.t_recovered else None)

    @property
    def rto_span_s(self) -> float | None:
        return self.after_heal_s if self.rto_from == "heal" else self.recovery_s

    @property
    def meets_rto(self) -> bool:
        return self.rto_span_s is not None and self.rto_span_s <= self.rto_s

    def since_inject_s(self, mark: Mark | None) -> float | None:
        return self._span(self.t_inject, mark.t_ns if mark else None)

    @property
    def sent_nothing(self) -> bool:
        """The workload reported counters and sent 0: no loss can be judged (never a pass)."""
        return self.counters.get("sent") == 0 and "received" in self.counters

    @property
    def data_loss_ratio(self) -> float | None:
        sent, received = self.counters.get("sent"), self.counters.get("received")
        if sent is None or received is None or sent == 0:
            return None
        return max(0, sent - received) / sent

    def as_dict(self) -> dict[str, object]:
        return {
            "t_inject_ns": self.t_inject, "t_heal_ns": self.t_heal,
            "t_detect_ns": self.t_detect.t_ns if self.t_detect else None,
            "detected_by": self.t_detect.source if self.t_detect else None,
            "network_detection_s": self.since_inject_s(self.t_detect_network),
            "network_detected_by": self.t_detect_network.source if self.t_detect_network else None,
            "application_detection_s": self.since_inject_s(self.t_detect_app),
            "application_detected_by": self.t_detect_app.source if self.t_detect_app else None,
            "t_recovered_ns": self.t_recovered.t_ns if self.t_recovered else None,
            "recovered_by": self.t_recovered.source if self.t_recovered else None,
            "detection_s": self.detection_s, "recovery_s": self.recovery_s, "outage_s": self.outage_s,
            "recovery_after_heal_s": self.after_heal_s, "rto_s": self.rto_s, "meets_rto": self.meets_rto,
            "counters": self.counters, "data_loss_ratio": self.data_loss_ratio,
        }


def network_detection(t_inject: int, events: Sequence[KernelEvent]) -> Mark | None:
    marks = [Mark(e.t_ns, f"kernel: {e}") for e in events if e.t_ns >= t_inject and e.symptom]
    return min(marks, key=lambda m: m.t_ns, default=None)


def application_detection(t_inject: int, samples: Sequence[ProbeResult]) -> Mark | None:
    marks = [Mark(s.ended_ns, f"probe {s.probe} failed: {s.detail}") for s in samples
             if not s.ok and s.started_ns >= t_inject]
    return min(marks, key=lambda m: m.t_ns, default=None)


def detection(t_inject: int, events: Sequence[KernelEvent], samples: Sequence[ProbeResult]) -> Mark | None:
    marks = [m for m in (network_detection(t_inject, events), application_detection(t_inject, samples)) if m]
    return min(marks, key=lambda m: m.t_ns, default=None)


def flow_recovery(t_heal: int, events: Sequence[KernelEvent]) -> Mark | None:
    """When the watched flow was back: the heal, if a connection was ESTABLISHED then;
    otherwise the first connection to reach ESTABLISHED after it."""
    state: dict[int, str] = {}
    for e in sorted(events, key=lambda e: e.t_ns):
        if e.t_ns > t_heal:
            break
        if e.kind == "STATE":
            state[e.socket] = e.new_state
    # Sockets never seen changing state were established before the watch began and untouched.
    if ESTABLISHED in state.values() or not any(e.kind == "STATE" for e in events if e.t_ns <= t_heal):
        return Mark(t_heal, "flow stayed ESTABLISHED through the fault")
    first = next((e for e in sorted(events, key=lambda e: e.t_ns)
                  if e.t_ns > t_heal and e.kind == "STATE" and e.new_state == ESTABLISHED), None)
    return Mark(first.t_ns, f"kernel: {first}") if first else None


def probe_recovery(t_heal: int, samples: Sequence[ProbeResult]) -> Mark | None:
    s = next((s for s in sorted(samples, key=lambda s: s.started_ns) if s.started_ns >= t_heal and s.ok), None)
    return Mark(s.ended_ns, f"probe {s.probe} passed: {s.detail}") if s else None


def compute(targets: Targets, t_inject: int | None, t_heal: int | None, events: Sequence[KernelEvent] | None,
            samples: Sequence[ProbeResult] | None, counters: Mapping[str, int]) -> Metrics:
    """events / samples are None when that signal is not configured (as opposed to empty)."""
    m = Metrics(targets.rto_s, t_inject, None, t_heal, None, dict(counters), targets.rto_from)
    if t_inject is None:
        return m
    m.t_detect_network = network_detection(t_inject, events or [])
    m.t_detect_app = application_detection(t_inject, samples or [])
    m.t_detect = detection(t_inject, events or [], samples or [])
    if t_heal is None:
        return m
    signals = []
    if events is not None:
        signals.append(flow_recovery(t_heal, events))
    if samples is not None:
        signals.append(probe_recovery(t_heal, samples))
    if signals and all(signals):
        m.t_recovered = max(signals, key=lambda mk: mk.t_ns)  # type: ignore[arg-type, return-value]
    if m.t_detect and m.t_recovered and m.t_detect.t_ns > m.t_recovered.t_ns:
        # A first symptom after recovery (a paused process leaves none; its flow closing at
        # the run's end is not how the fault was noticed): not detected, not a negative outage.
        m.t_detect = None
    for name in ("t_detect_network", "t_detect_app"):
        mark = getattr(m, name)
        if mark and m.t_recovered and mark.t_ns > m.t_recovered.t_ns:
            setattr(m, name, None)
    return m


def verdicts(m: Metrics, targets: Targets) -> list[Verdict]:
    out = []
    if m.recovery_s is None:
        out.append(Verdict("RTO", False, f"no recovery seen (target {targets.rto_s:g} s)"))
    else:
        since = f" after the heal ({m.recovery_s:.3f} s after the inject)" if m.rto_from == "heal" else ""
        out.append(Verdict("RTO", m.meets_rto, f"recovered in {m.rto_span_s:.3f} s{since}, target {targets.rto_s:g} s"))
    if targets.max_detection_s is not None:
        d = m.detection_s
        out.append(Verdict("detection", d is not None and d <= targets.max_detection_s,
                           f"{'not detected' if d is None else f'{d:.3f} s'}, "
                           f"target {targets.max_detection_s:g} s"))
    loss = m.data_loss_ratio
    if m.sent_nothing:
        out.append(Verdict("data loss", False, "the workload sent nothing (0 messages): no loss can be judged"))
    elif loss is not None:
        out.append(Verdict("data loss", loss <= targets.max_data_loss_ratio,
                           f"{loss:.2%} ({m.counters.get('sent', 0) - m.counters.get('received', 0)} of "
                           f"{m.counters.get('sent', 0)}), target {targets.max_data_loss_ratio:.2%}"))
    if "violations" in m.counters:  # a workload that checks its own state (examples/trading/check.py)
        n = m.counters["violations"]
        out.append(Verdict("integrity", n == 0, f"{n} violation(s): {m.counters.get('duplicates', 0)} order(s) "
                           "executed more than once, positions compared per symbol"))
    if "md_continuity_permille" in m.counters:  # market data: distinct ticks received / published
        c = m.counters["md_continuity_permille"]
        out.append(Verdict("market-data continuity", c >= MIN_CONTINUITY_PERMILLE,
                           f"{c / 10:.1f} %, target {MIN_CONTINUITY_PERMILLE / 10:g} %"))
    for name, (lo, hi) in targets.counters.items():
        v = m.counters.get(name)
        want = " and ".join(w for w in (f">= {lo:g}" if lo is not None else "",
                                         f"<= {hi:g}" if hi is not None else "") if w)
        ok = v is not None and (lo is None or v >= lo) and (hi is None or v <= hi)
        out.append(Verdict(name, ok, f"{'not reported' if v is None else v}, expected {want}"))
    return out
