"""The trading lab's own logic that the chaos suite's verdicts rest on: the consumer's lag, the
per-plane latency comparison, the caught-up probe (the gateway's pacing: test_tws_gateway)."""

from __future__ import annotations

import json
import time

from faultline.examples.trading import check
from faultline.examples.trading.consumer import Lag

MS = 1_000_000


def test_lag_episode_from_behind_to_caught_up():
    lag = Lag()
    lag.observe([3.0, 2.0])
    lag.observe([4999.0] + [10.0] * 299)   # a paused consumer's first read after SIGCONT
    assert lag.counters()["draining"] == 1
    time.sleep(0.02)
    lag.observe([2.0])
    c = lag.counters()
    assert (c["lag_max_ms"], c["backlog_max"], c["lag_now_ms"], c["draining"]) == (4999, 300, 2, 0)
    assert 20 <= c["drain_ms"] < 1000


def _logs(run, orders, ticks):
    (run / "trader").mkdir(parents=True)
    (run / "consumer").mkdir()
    (run / "trader" / "orders.jsonl").write_text("".join(
        json.dumps({"op": "fill", "ref": f"T{i}", "recv_ns": sent + int(rtt * MS), "rtt_ms": rtt}) + "\n"
        for i, (sent, rtt) in enumerate(orders)))
    (run / "consumer" / "md_age.jsonl").write_text("".join(json.dumps([t, age]) + "\n" for t, age in ticks))


def test_planes_compare_p90_and_p99_by_send_time(tmp_path):
    inject, heal = 10_000 * MS, 15_000 * MS
    orders = [(t * MS, 2.0) for t in range(7_000, 10_000, 100)] + [(t * MS, 2.5) for t in range(10_000, 15_000, 100)]
    # Ticks published during the fault arrive after the heal, 400 ms late: counted in the fault.
    ticks = [(t * MS, 5.0) for t in range(8_000, 10_000, 50)] + [(t * MS, 400.0) for t in range(10_000, 15_000, 50)]
    ticks.append((1_000 * MS, 900.0))  # long before the baseline window: not counted
    _logs(tmp_path, orders, ticks)
    # Placed while the fault was on: A and B (A executed twice, B once), C before it, D never executed.
    with (tmp_path / "trader" / "orders.jsonl").open("a") as f:
        for ref, t in (("A", 11_000), ("B", 12_000), ("C", 9_000), ("D", 14_000)):
            f.write(json.dumps({"op": "intent", "ref": ref, "t_ns": t * MS}) + "\n")
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "executions.jsonl").write_text(
        "".join(json.dumps({"order_ref": r}) + "\n" for r in ("A", "A", "B", "C")))
    assert check.planes(tmp_path, inject, heal) == {
        "order_p90_base_ms": 2, "order_p90_fault_ms": 3, "order_p90_rise_ms": 1,
        "order_p99_base_ms": 2, "order_p99_fault_ms": 3, "order_p99_rise_ms": 1,
        "md_p90_base_ms": 5, "md_p90_fault_ms": 400, "md_p90_rise_ms": 395,
        "md_p99_base_ms": 5, "md_p99_fault_ms": 400, "md_p99_rise_ms": 395,
        "fills_per_min_base": 600, "fills_per_min_fault": 600,  # one fill each 100 ms
        "orders_in_fault": 3, "orders_in_fault_once": 1}
    # A trader that started late: the baseline rate counts from its first fill, not from before it ran.
    late = tmp_path / "late"
    _logs(late, [o for o in orders if o[0] >= 8_500 * MS], ticks)
    assert abs(check.planes(late, inject, heal)["fills_per_min_base"] - 600) <= 2  # counted over 2 s: 300
    # One 200 ms stall in an unfaulted plane (two late ticks of 100): p99 shows it, p90 does not.
    stall = tmp_path / "stall"
    _logs(stall, orders, [(t * MS, 200.0 if t in (12_000, 12_050) else 5.0) for t in range(8_000, 15_000, 50)])
    got = check.planes(stall, inject, heal)
    assert (got["md_p99_rise_ms"], got["md_p90_rise_ms"]) == (195, 0)


def test_caught_up_needs_connected_nothing_unfilled_nothing_retrying(tmp_path):
    (tmp_path / "trader").mkdir()
    stats = tmp_path / "trader" / "stats.json"
    assert not check.caught_up(tmp_path)[0]  # no stats yet
    for connected, unfilled, retrying, ok in [(True, 0, 0, True), (False, 0, 0, False), (True, 3, 0, False),
                                              (True, 0, 2, False)]:
        stats.write_text(json.dumps({"connected": connected, "unfilled": unfilled, "retrying": retrying}))
        assert check.caught_up(tmp_path)[0] is ok
