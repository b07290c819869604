"""Requests built from typed parameters (controller/agents/spec.py): each kind's value fills
its own part of the FaultSpec and nothing else; a kind named at run time is checked by name."""

from __future__ import annotations

import pytest

from faultline.controller.agents.spec import (
    PARAMS,
    Delay,
    Disconnect,
    Loss,
    Rate,
    Reorder,
    fault_spec,
    params,
)
from faultline.v1 import agent_pb2 as pb


def test_each_kind_fills_its_own_params_and_the_selector_is_shared():
    spec = fault_spec(Loss(percent=20, correlation=5, gilbert_elliott=(1, 2, 3, 4)), "lab0", peers=["10.0.0.2/32"],
                      ports=[4002], direction="egress", protocol="tcp", lease_s=1.5, label="x")
    assert spec.kind == pb.FAULT_KIND_LOSS and spec.WhichOneof("params") == "loss"
    assert (spec.loss.percent, spec.loss.correlation_percent, spec.loss.gilbert_elliott.loss_in_good_percent) == (
        20, 5, 4)
    assert (spec.selector.interface, list(spec.selector.peer_cidrs), list(spec.selector.ports)) == (
        "lab0", ["10.0.0.2/32"], [4002])
    assert (spec.selector.direction, spec.selector.protocol, spec.lease_ms) == (
        pb.DIRECTION_EGRESS, pb.PROTOCOL_TCP, 1500)
    d = fault_spec(Delay(delay_ms=100, jitter_ms=10, distribution="normal"), "lab0")
    assert d.WhichOneof("params") == "delay" and d.delay.distribution == pb.DELAY_DISTRIBUTION_NORMAL
    assert fault_spec(Disconnect(), "lab0").WhichOneof("params") == "disconnect"
    assert fault_spec(Rate(bits_per_second=8_000_000), "lab0").rate.bits_per_second == 8_000_000
    r = fault_spec(Reorder(percent=25, delay_ms=10, gap=5), "lab0").reorder
    assert (r.percent, r.delay_ms, r.gap) == (25, 10, 5)


def test_every_network_kind_has_a_parameter_value():
    for kind, cls in PARAMS.items():
        assert cls.kind == kind and fault_spec(cls(), "lab0").WhichOneof("params") == kind


def test_a_kind_named_at_run_time_takes_only_its_own_fields():
    assert params("delay", delay_ms=5) == Delay(delay_ms=5)
    with pytest.raises(ValueError, match="loss: no parameter delay_ms; it takes correlation, gilbert_elliott, perc"):
        params("loss", delay_ms=5)
    with pytest.raises(ValueError, match="fault kind: one of disconnect"):
        params("smoke")
