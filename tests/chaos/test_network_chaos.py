"""Network chaos (the chaos suite's first category) on the trading lab: partitions, latency,
packet loss and combined faults, each a file of contracts/scenarios/trading run for real."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import assert_recovered

pytestmark = [pytest.mark.chaos, pytest.mark.root]
CATEGORY = "network chaos"  # which Key Metrics its tests report (controller/suite/key_metrics.py)


class TestNetworkDisconnection:
    """Recovery time from partitions: both directions cut between trader and gateway."""

    def test_network_partition_3s_recovery(self, trading):
        assert_recovered(trading("partition_trader_gateway_3s"))

    def test_network_partition_10s_recovery(self, trading):
        assert_recovered(trading("partition_trader_gateway_10s"))

    @pytest.mark.slow
    def test_network_partition_30s_recovery(self, trading):
        o = trading("partition_trader_gateway_30s")
        assert_recovered(o)
        assert o.scenario.targets.rto_from == "heal"  # a 30 s outage is timed from its end


@pytest.mark.netem
class TestLatencyInjection:
    """The gateway's answers delayed (netem): orders keep flowing, nothing lost or doubled."""

    def test_latency_100ms(self, trading):
        assert_recovered(trading("latency_gateway_100ms"))

    def test_latency_500ms(self, trading):
        assert_recovered(trading("latency_gateway_500ms"))

    def test_latency_2s(self, trading):
        assert_recovered(trading("latency_gateway_2000ms"))

    def test_latency_5s(self, trading):
        assert_recovered(trading("latency_gateway_5000ms"))


class TestPacketLoss:
    """Data loss with packet loss on the order path: retransmits and replays lose nothing."""

    def test_packet_loss_5_percent(self, trading):
        assert_recovered(trading("loss_trader_gateway_5"))

    def test_packet_loss_20_percent(self, trading):
        assert_recovered(trading("loss_trader_gateway_20"))

    def test_packet_loss_50_percent(self, trading):
        assert_recovered(trading("loss_trader_gateway_50"))


class TestCombinedFaults:
    """Two faults at once: the broker down while trader and gateway are partitioned."""

    def test_broker_down_during_partition(self, trading):
        o = trading("cascade_broker_and_gateway")
        assert_recovered(o)
        assert o.scenario.fault_type == "COMBINED"
