"""Gateway (IBKR-style) resilience on the trading lab: connection failures, reconnect backoff,
timeouts, rate limiting, orders placed during failures, streaming market data."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from faultline.controller.model import config as resilience
from faultline.examples.trading import LAB_CONFIG
from tests.chaos.conftest import assert_recovered, failed, verdict

pytestmark = [pytest.mark.chaos, pytest.mark.root]
CATEGORY = "IBKR resilience"  # which Key Metrics its tests report (controller/suite/key_metrics.py)


class TestConnectionFailures:
    def test_connection_reset_by_gateway(self, trading):
        assert_recovered(trading("gateway_reset"))


class TestExponentialBackoff:
    def test_reconnect_backoff_follows_the_configured_schedule_in_the_kernel(self, run_scenario):
        """Intervals between the trader's SYN_SENT transitions (new connect attempts) during a
        partition = connection timeout + min(base * 2^k, max), from the lab config."""
        cfg = resilience.load(LAB_CONFIG)
        o = run_scenario(Path(__file__).with_name("backoff.yaml"), scorecard=False)
        assert o.passed, failed(o)
        m = o.metrics
        syns = sorted(e["t_ns"] for e in o.journal["kernel_events"]
                      if e["host"] == "trader" and e["kind"] == "STATE" and e["new_state"] == "SYN_SENT"
                      and e["flow"].endswith(":4002") and m.t_inject <= e["t_ns"] <= m.t_heal)
        gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(syns)]
        expected = [cfg.connection_timeout_s + min(cfg.base_retry_delay_s * 2 ** k, cfg.max_retry_delay_s)
                    for k in range(len(gaps))]
        print("SYN gaps", [f"{g:.3f}" for g in gaps], "expected", expected)
        assert len(gaps) >= 3, gaps  # 9 s of partition: at least four attempts
        for k, (got, want) in enumerate(zip(gaps, expected, strict=True)):
            assert abs(got - want) < 0.1, (k, got, want, gaps)


class TestTimeoutHandling:
    def test_unanswered_orders_time_out_and_are_replayed_once(self, trading):
        """Acks and fills lost for 3 s: the trader's request timeout marks the link dead, and the
        replay under the same ids executes nothing twice."""
        o = trading("acks_lost_gateway_to_trader")
        assert_recovered(o)
        assert "0 violation" in verdict(o, "integrity")


class TestRateLimiting:
    def test_replay_after_partition_is_paced_by_the_rate_limit(self, trading):
        o = trading("rate_limit_after_partition")
        assert_recovered(o)
        assert o.metrics.counters["rate_limited"] >= 1 and o.metrics.counters["trader_rate_limited"] >= 1


class TestOrderPlacementDuringFailures:
    def test_orders_placed_while_acks_are_lost_execute_exactly_once(self, trading):
        o = trading("acks_lost_gateway_to_trader")
        assert_recovered(o)
        assert o.metrics.counters["duplicates"] == 0


class TestStreamingData:
    def test_market_data_continuity_through_a_partition(self, trading):
        o = trading("partition_trader_gateway_10s")
        assert_recovered(o)
        verdict(o, "market-data continuity")
