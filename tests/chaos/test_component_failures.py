"""Component failures on the trading lab: the broker killed and restarted, the consumer paused
(timeout and lag), the trader restarted (the orchestrator's state recovered), cascading
failures, and plane isolation."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import assert_recovered

pytestmark = [pytest.mark.chaos, pytest.mark.root]
CATEGORY = "component failures"  # which Key Metrics its tests report (controller/suite/key_metrics.py)


class TestBrokerFailures:
    def test_broker_shutdown_and_recovery(self, trading):
        assert_recovered(trading("broker_kill_restart"))


class TestProducerConsumer:
    def test_consumer_timeout_and_lag_drained(self, trading):
        o = trading("consumer_pause")
        assert_recovered(o)
        c = o.metrics.counters
        assert c["consumer_lag_max_ms"] >= 4000 and c["consumer_draining"] == 0


class TestOrchestratorRestart:
    def test_trader_restart_recovers_its_state(self, trading):
        assert_recovered(trading("trader_kill_restart"))


class TestCascadingFailures:
    def test_broker_and_gateway_together(self, trading):
        assert_recovered(trading("cascade_broker_and_gateway"))


class TestPlaneIsolation:
    def test_loss_on_the_market_data_path_leaves_the_order_path_alone(self, trading):
        o = trading("loss_broker_link_20")
        assert_recovered(o)
        # under half TCP's least RTO on the order path, at least that on the faulted one
        assert o.metrics.counters["order_p90_rise_ms"] <= 100 <= o.metrics.counters["md_p90_rise_ms"]
