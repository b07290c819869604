"""The chaos suite's Key Metrics: four per category, each from one scenario's outcome, either
measured (a headline value and the figures behind it) or "not measured: why", never left out.

The figures come from the recovery measurement (kernel timestamps) and from the counters the
workload's check reports (examples/trading/check.py names them: sent, received, exactly_once,
orders_in_fault, fills_per_min_*, *_p90_rise_ms, *_p99_rise_ms, ...): any workload reporting those names gets
the same metrics."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultline.controller.model.scenario import FaultType
from faultline.controller.model.steps import ProcessFault

if TYPE_CHECKING:  # the runner (and grpc under it) loads only where outcomes exist
    from faultline.controller.run.runner import Outcome


@dataclass(frozen=True)
class KeyMetric:
    name: str
    value: float | None   # the headline figure in `unit`; None when not measured (or never recovered)
    unit: str
    text: str             # the figures behind it, or "not measured: why"
    measured: bool = True

    def as_dict(self) -> dict[str, Any]:
        if not self.measured:
            return {"measured": False, "why": self.text.removeprefix("not measured: ")}
        return {"measured": True, "value": self.value, "unit": self.unit, "text": self.text}

    def line(self) -> str:
        return f"{self.name}: {self.text}"


def _not(name: str, why: str) -> KeyMetric:
    return KeyMetric(name, None, "", f"not measured: {why}", measured=False)


def _kinds(o: Outcome) -> set[str]:
    return {s.fault_kind for s in o.scenario.method if s.kind != "wait"}


def _counters(o: Outcome, *names: str) -> str | None:
    """None when the workload reported every name, else why not."""
    missing = [n for n in names if n not in o.metrics.counters]
    return f"the workload's check reported no {', '.join(missing)}" if missing else None


def _recovery(o: Outcome, name: str) -> KeyMetric:
    m = o.metrics
    if m.recovery_s is None:
        return KeyMetric(name, None, "s", "never recovered within the run")
    after = f", {m.after_heal_s:.3f} s after the heal" if m.after_heal_s is not None else ""
    return KeyMetric(name, round(m.recovery_s, 3), "s", f"{m.recovery_s:.3f} s from the fault{after}")


def partition_recovery(o: Outcome) -> KeyMetric:
    name = "recovery time from partitions"
    if not _kinds(o) & {"partition", "disconnect"}:
        return _not(name, "no partition in this scenario")
    return _recovery(o, name)


def throughput_under_latency(o: Outcome) -> KeyMetric:
    name = "throughput under high latency"
    if "delay" not in _kinds(o):
        return _not(name, "no latency fault in this scenario")
    if why := _counters(o, "fills_per_min_base", "fills_per_min_fault"):
        return _not(name, why)
    c = o.metrics.counters
    base, during = c["fills_per_min_base"], c["fills_per_min_fault"]
    share = f" ({during / base:.0%} of before)" if base else ""
    return KeyMetric(name, during, "fills/min", f"{base} fills/min before, {during} during{share}")


def _loss(o: Outcome, name: str, percent: bool = False) -> KeyMetric:
    ratio = o.metrics.data_loss_ratio
    if ratio is None:
        return _not(name, "the scenario names no data-loss probe (sent / received)")
    c = o.metrics.counters
    lost = c.get("sent", 0) - c.get("received", 0)
    value = round(ratio * 100, 4) if percent else ratio
    return KeyMetric(name, value, "%" if percent else "ratio",
                     f"{ratio:.2%} ({lost} of {c.get('sent', 0)} orders lost)")


def loss_with_packet_loss(o: Outcome) -> KeyMetric:
    name = "data loss with packet loss"
    if "loss" not in _kinds(o):
        return _not(name, "no packet-loss fault in this scenario")
    return _loss(o, name)


def _in_fault(o: Outcome, name: str) -> KeyMetric:
    if why := _counters(o, "orders_in_fault", "orders_in_fault_once"):
        return _not(name, why + " (it needs the fault window)")
    c = o.metrics.counters
    n, once = c["orders_in_fault"], c["orders_in_fault_once"]
    if not n:
        return _not(name, "the trader placed no order while the fault was on")
    return KeyMetric(name, round(once / n, 4), "ratio", f"{once} of {n} orders placed during the fault "
                     f"executed exactly once ({once / n:.1%})")


def combined_success_rate(o: Outcome) -> KeyMetric:
    name = "success rate with combined faults"
    if o.scenario.fault_type != FaultType.COMBINED:
        return _not(name, f"a single fault ({o.scenario.fault_type}), not combined")
    return _in_fault(o, name)


def connection_recovery(o: Outcome) -> KeyMetric:
    name = "connection recovery time"
    r = o.scenario.recovery
    if not r.watch_port:
        return _not(name, "recovery is judged by a probe only, no connection is watched")
    km = _recovery(o, name)
    reconnects = o.metrics.counters.get("reconnects")
    more = f"; {reconnects} reconnect(s)" if reconnects is not None else ""
    return KeyMetric(name, km.value, km.unit, f"{r.watch_host}'s connection to port {r.watch_port}: {km.text}{more}")


def order_success_during_failures(o: Outcome) -> KeyMetric:
    return _in_fault(o, "order success rate during failures")


def streaming_completeness(o: Outcome) -> KeyMetric:
    name = "data completeness during streaming"
    if why := _counters(o, "md_continuity_permille", "md_published", "md_received"):
        return _not(name, why)
    c = o.metrics.counters
    pct = c["md_continuity_permille"] / 10
    return KeyMetric(name, pct, "%", f"{c['md_received']} of {c['md_published']} ticks received ({pct:.1f} %)")


def failed_requests(o: Outcome) -> KeyMetric:
    name = "failed request tracking"
    if why := _counters(o, "trader_timeouts", "trader_rate_limited", "replayed"):
        return _not(name, why)
    c = o.metrics.counters
    failed = c["trader_timeouts"] + c["trader_rate_limited"]
    return KeyMetric(name, failed, "requests", f"{c['trader_timeouts']} timed out, {c['trader_rate_limited']} "
                     f"rejected by the rate limit, {c['replayed']} retried (replayed under the same id)")


def component_recovery(o: Outcome) -> KeyMetric:
    name = "component recovery time"
    procs = [s.action for s in o.scenario.method if isinstance(s.action, ProcessFault)]
    if not procs:
        return _not(name, "no component (process) fault in this scenario")
    km = _recovery(o, name)
    what = ", ".join(p.describe() for p in procs)
    drain = o.metrics.counters.get("consumer_drain_ms")
    more = f"; the consumer drained its backlog in {drain} ms" if drain else ""
    return KeyMetric(name, km.value, km.unit, f"{what}: {km.text}{more}")


def buffering(o: Outcome) -> KeyMetric:
    name = "message buffering capacity"
    if why := _counters(o, "gateway_outbox_max", "consumer_backlog_max", "md_continuity_permille"):
        return _not(name, why)
    c = o.metrics.counters
    held = max(c["gateway_outbox_max"], c["consumer_backlog_max"])
    return KeyMetric(name, held, "messages", f"held up to {c['gateway_outbox_max']} at the gateway (for the broker) "
                     f"and {c['consumer_backlog_max']} in the consumer's backlog; delivered after: "
                     f"{c['md_continuity_permille'] / 10:.1f} % of ticks")


def state_restoration(o: Outcome) -> KeyMetric:
    name = "state restoration accuracy"
    restarted = [s.action.describe() for s in o.scenario.method
                 if isinstance(s.action, ProcessFault) and (s.action.restart or s.action.action == "restart-unit")]
    if not restarted:
        return _not(name, "no component is restarted in this scenario")
    if why := _counters(o, "sent", "exactly_once", "symbols", "position_mismatches"):
        return _not(name, why)
    c = o.metrics.counters
    ratio = c["exactly_once"] / c["sent"] if c["sent"] else 1.0
    restored = f"the trader read back {c['trader_restored']} order(s); " if c.get("trader_restored") else ""
    return KeyMetric(name, round(ratio, 4), "ratio",
                     f"after {', '.join(restarted)} (restarted): {restored}{c['exactly_once']} of {c['sent']} orders "
                     f"executed exactly once, positions match on {c['symbols'] - c['position_mismatches']} of "
                     f"{c['symbols']} symbols")


def isolation(o: Outcome) -> KeyMetric:
    """The unfaulted plane's rise, at the quantile the scenario bounds it (p90 in the shipped
    ones: see loss_broker_link_20.yaml), with both planes' p90 and p99 rises beside it."""
    name = "failure isolation effectiveness"
    bounded = {}
    for k, (_lo, hi) in o.scenario.targets.counters.items():
        if (m := re.fullmatch(r"(\w+?)_(p\d+)_rise_ms", k)) and hi is not None:
            bounded[k] = (m.group(1), m.group(2), hi)
    if why := _counters(o, *(f"{p}_{q}_rise_ms" for p in ("order", "md") for q in ("p90", "p99"))):
        return _not(name, why)
    c = o.metrics.counters
    rises = "; ".join(f"{label} p90 +{c[f'{p}_p90_rise_ms']} ms, p99 +{c[f'{p}_p99_rise_ms']} ms"
                      for p, label in (("order", "order path"), ("md", "market data")))
    if not bounded:
        return _not(name, f"this scenario bounds no unfaulted plane ({rises})")
    key, (plane, q, bound) = next(iter(bounded.items()))
    label = {"order": "the order path", "md": "market data"}.get(plane, plane)
    return KeyMetric(name, c[key], "ms", f"{label}, not faulted: {q} rose {c[key]} ms (bound {bound:g}); {rises}")


def rto_compliance(o: Outcome) -> KeyMetric:
    name = "RTO compliance"
    m = o.metrics
    span = m.rto_span_s
    if span is None:
        return KeyMetric(name, None, "s", f"✗ never recovered (RTO {m.rto_s:g} s)")
    mark = "✓" if m.meets_rto else "✗"
    since = "from the heal" if m.rto_from == "heal" else "from the fault"
    return KeyMetric(name, round(span, 3), "s", f"{mark} {span:.3f} s {since}, RTO {m.rto_s:g} s")


def order_integrity(o: Outcome) -> KeyMetric:
    name = "order integrity"
    if why := _counters(o, "sent", "received", "duplicates", "violations"):
        return _not(name, why)
    c = o.metrics.counters
    return KeyMetric(name, c["violations"], "violations", f"{c['duplicates']} executed twice, "
                     f"{c['sent'] - c['received']} lost, of {c['sent']} orders ({c['violations']} violation(s))")


def position_accuracy(o: Outcome) -> KeyMetric:
    name = "position accuracy"
    if why := _counters(o, "symbols", "position_mismatches"):
        return _not(name, why)
    c = o.metrics.counters
    ok = c["symbols"] - c["position_mismatches"]
    return KeyMetric(name, round(ok / c["symbols"], 4) if c["symbols"] else 1.0, "ratio",
                     f"positions from executions match the trader's on {ok} of {c['symbols']} symbols")


def data_loss_percent(o: Outcome) -> KeyMetric:
    return _loss(o, "data loss %", percent=True)


CATEGORIES: Mapping[str, tuple[Callable[[Outcome], KeyMetric], ...]] = {
    "network chaos": (partition_recovery, throughput_under_latency, loss_with_packet_loss, combined_success_rate),
    "IBKR resilience": (connection_recovery, order_success_during_failures, streaming_completeness, failed_requests),
    "component failures": (component_recovery, buffering, state_restoration, isolation),
    "recovery scenarios": (rto_compliance, order_integrity, position_accuracy, data_loss_percent),
}


def of(o: Outcome, category: str | None = None) -> list[KeyMetric]:
    """The category's four metrics, or all sixteen."""
    fns = CATEGORIES[category] if category else [f for fs in CATEGORIES.values() for f in fs]
    return [f(o) for f in fns]


def as_json(o: Outcome) -> dict[str, dict[str, Any]]:
    """All sixteen, by category then name: what results.json keeps per scenario."""
    return {cat: {km.name: km.as_dict() for km in (f(o) for f in fns)} for cat, fns in CATEGORIES.items()}


def block(category: str, metrics: list[KeyMetric]) -> str:
    return "\n".join([f"Key Metrics ({category}):", *(f"  {km.line()}" for km in metrics)])


def block_html(category: str, metrics: list[KeyMetric]) -> str:
    rows = "".join(f"<tr><td>{html.escape(km.name)}</td><td>{html.escape(km.text)}</td></tr>" for km in metrics)
    return f"<h4>Key Metrics ({html.escape(category)})</h4><table>{rows}</table>"
