"""The Key Metrics: sixteen for every shipped trading scenario, each measured or "not measured:
why"; the figures from the recovery marks and the workload's counters."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultline.controller.model import scenario
from faultline.controller.run import recovery
from faultline.controller.run.runner import Outcome
from faultline.controller.suite import key_metrics

TRADING = Path(__file__).resolve().parents[2] / "contracts" / "scenarios" / "trading"
S = 1_000_000_000
# What examples/trading/check.py reports after a fault (with --window).
COUNTERS = {"sent": 100, "received": 99, "exactly_once": 98, "duplicates": 1, "violations": 2, "symbols": 3,
            "position_mismatches": 1, "md_published": 200, "md_received": 196, "md_continuity_permille": 980,
            "replayed": 7, "reconnects": 2, "trader_timeouts": 1, "trader_rate_limited": 4, "trader_restored": 60,
            "gateway_outbox_max": 150, "consumer_backlog_max": 90, "consumer_drain_ms": 300,
            "order_p90_rise_ms": 7, "md_p90_rise_ms": 300, "order_p99_rise_ms": 12, "md_p99_rise_ms": 450,
            "fills_per_min_base": 600, "fills_per_min_fault": 150,
            "orders_in_fault": 40, "orders_in_fault_once": 38}


def outcome(name: str, counters: dict[str, int] | None = None, recovered_s: float | None = 4.5) -> Outcome:
    scn = scenario.load(TRADING / f"{name}.yaml")
    m = recovery.Metrics(30, t_inject=10 * S, t_heal=13 * S, counters=dict(COUNTERS if counters is None else counters),
                         rto_from=scn.targets.rto_from,
                         t_recovered=None if recovered_s is None else recovery.Mark(int((10 + recovered_s) * S), "x"))
    return Outcome(scn, m, [], {})


SCENARIOS = sorted(p for p in TRADING.glob("*.yaml") if p.stem != "workload")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_has_all_sixteen_each_measured_or_with_why(path):
    every = key_metrics.as_json(outcome(path.stem))
    assert list(every) == ["network chaos", "IBKR resilience", "component failures", "recovery scenarios"]
    assert [len(v) for v in every.values()] == [4, 4, 4, 4]
    for cat in every.values():
        for name, km in cat.items():
            assert km["measured"] or km["why"], (name, km)
            assert not km["measured"] or km["text"], (name, km)
    # the four every case can measure
    assert all(every["recovery scenarios"][n]["measured"] for n in every["recovery scenarios"])


def test_figures_of_a_combined_fault_with_a_restart():
    o = outcome("cascade_broker_and_gateway")
    got = {km.name: km for km in key_metrics.of(o)}
    assert got["recovery time from partitions"].value == 4.5
    assert got["success rate with combined faults"].value == 0.95  # 38 of 40
    assert got["order success rate during failures"].text.startswith("38 of 40 orders placed during the fault")
    assert got["data completeness during streaming"].value == 98.0
    assert got["failed request tracking"].value == 5  # 1 timed out + 4 rate-limited
    assert got["component recovery time"].value == 4.5
    assert got["message buffering capacity"].value == 150
    assert got["state restoration accuracy"].value == 0.98
    assert "positions match on 2 of 3 symbols" in got["state restoration accuracy"].text
    assert got["order integrity"].value == 2 and "1 executed twice, 1 lost, of 100" in got["order integrity"].text
    assert got["position accuracy"].value == round(2 / 3, 4)
    assert got["data loss %"].value == 1.0
    assert got["RTO compliance"].text.startswith("✓ 4.500 s")
    # not this scenario's: said why
    assert got["throughput under high latency"].text == "not measured: no latency fault in this scenario"
    assert got["data loss with packet loss"].text == "not measured: no packet-loss fault in this scenario"
    assert got["failure isolation effectiveness"].text.startswith("not measured: this scenario bounds no unfaulted")


def test_isolation_and_throughput_and_what_a_missing_counter_says():
    got = {km.name: km for km in key_metrics.of(outcome("loss_broker_link_20"))}
    iso = got["failure isolation effectiveness"]
    assert iso.value == 7  # the quantile the scenario bounds: p90
    assert "the order path, not faulted: p90 rose 7 ms (bound 100); order path p90 +7 ms, p99 +12 ms" in iso.text
    assert got["data loss with packet loss"].value == 0.01
    lat = {km.name: km for km in key_metrics.of(outcome("latency_gateway_500ms"))}
    assert lat["throughput under high latency"].text == "600 fills/min before, 150 during (25% of before)"
    bare = {km.name: km for km in key_metrics.of(outcome("latency_gateway_500ms", counters={}))}
    assert not bare["throughput under high latency"].measured
    assert "reported no fills_per_min_base, fills_per_min_fault" in bare["throughput under high latency"].text
    assert bare["data loss %"].text.startswith("not measured: ")


def test_never_recovered_is_measured_as_such_not_hidden():
    got = {km.name: km for km in key_metrics.of(outcome("partition_trader_gateway_3s", recovered_s=None))}
    assert got["RTO compliance"].measured and got["RTO compliance"].value is None
    assert got["RTO compliance"].text.startswith("✗ never recovered")
    assert got["connection recovery time"].text.startswith("trader's connection to port 4002: never recovered")
