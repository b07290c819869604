"""netem parameters: validation by field, encoding to netlink and back, tables, queue sizing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from faultline.agent.domain.engine import FaultEngine
from faultline.agent.domain.errors import FailedPrecondition, InvalidArgument
from faultline.agent.domain.spec import Direction, Distribution, FaultKind, GilbertElliott, Mechanism, Netem
from faultline.agent.domain.validation import Limits, RawSpec, validate
from faultline.agent.kernel import netem_dist, netem_nla
from faultline.agent.kernel.netem_shape import INGRESS_REFUSAL, MIN_LIMIT, queue_limit
from tests.fakes import LINKS, FakeMechanism


def raw(**kw) -> RawSpec:
    base = dict(kind=FaultKind.DELAY, interface="lab0", direction=Direction.BOTH, direction_unspecified=True,
                lease_ms=1000, delay_ms=100.0)
    base.update(kw)
    return RawSpec(**base)


def check(r: RawSpec):
    return validate(r, Limits(), lambda n: n == "lab0")


@pytest.mark.parametrize(("kw", "field", "allowed"), [
    ({"delay_ms": -5.0}, "spec.delay.delay_ms", "0 < delay_ms <= 60000"),
    ({"delay_ms": None, "jitter_ms": 10.0}, "spec.delay.delay_ms", "0 < delay_ms"),
    ({"delay_ms": math.nan}, "spec.delay.delay_ms", "0 < delay_ms"),
    ({"jitter_ms": 150.0}, "spec.delay.jitter_ms", "0 <= jitter_ms <= delay_ms (100)"),
    ({"jitter_ms": 10.0, "correlation": 101.0}, "spec.delay.correlation_percent", "0 <= percent <= 100"),
    ({"correlation": 20.0}, "spec.delay.correlation_percent", "0 unless jitter_ms > 0"),
    ({"distribution": Distribution.NORMAL}, "spec.delay.distribution", "UNIFORM unless jitter_ms > 0"),
    ({"kind": FaultKind.REORDER, "percent": 25.0, "delay_ms": None}, "spec.reorder.delay_ms", "needs a delay"),
    ({"kind": FaultKind.REORDER, "percent": 0.0}, "spec.reorder.percent", "0 < percent <= 100"),
    ({"kind": FaultKind.RATE, "rate_bps": 0}, "spec.rate.bits_per_second", "8 to 1e+12"),
    ({"kind": FaultKind.RATE, "rate_bps": 10**6, "packet_overhead": 500}, "spec.rate.packet_overhead_bytes", "-128"),
    ({"kind": FaultKind.DUPLICATE, "percent": 120.0}, "spec.duplicate.percent", "0 < percent <= 100"),
    ({"kind": FaultKind.CORRUPT, "percent": None}, "spec.corrupt.percent", "0 < percent <= 100"),
    ({"kind": FaultKind.LOSS, "gilbert_elliott": (0.0, 30.0, 90.0, 1.0)}, "spec.loss.gilbert_elliott.p_percent",
     "0 < percent"),
    ({"kind": FaultKind.LOSS, "loss_percent": 5.0, "gilbert_elliott": (5.0, 30.0, 90.0, 1.0)}, "spec.loss.percent",
     "unset when gilbert_elliott"),
    ({"params": "loss"}, "spec.loss", "only with kind LOSS, not DELAY"),
    ({"queue_limit": 20_000_000}, "spec.queue_limit_packets", "0 (sized by the agent) to 10000000"),
])
def test_each_bad_netem_parameter_is_named_with_its_range(kw, field, allowed):
    with pytest.raises(InvalidArgument) as e:
        check(raw(**kw))
    assert e.value.field == field
    assert allowed in str(e.value)


def test_direction_defaults_to_egress_for_netem_only_kinds_and_both_for_drops():
    assert check(raw()).selector.direction is Direction.EGRESS
    loss = check(raw(kind=FaultKind.LOSS, delay_ms=None, loss_percent=20.0))
    assert loss.selector.direction is Direction.BOTH
    assert loss.ebpf_cannot == "" and loss.netem == Netem(loss=20.0)


def test_what_only_netem_can_do_is_marked_so():
    corr = check(raw(kind=FaultKind.LOSS, loss_percent=20.0, correlation=25.0))
    assert corr.ebpf_cannot == "loss correlation needs netem"
    ge = check(raw(kind=FaultKind.LOSS, gilbert_elliott=(5.0, 30.0, 90.0, 1.0)))
    assert ge.netem.gilbert_elliott == GilbertElliott(5.0, 30.0, 90.0, 1.0)
    assert ge.netem.gilbert_elliott.expected_loss() == pytest.approx(13.714, abs=0.001)
    delay = check(raw(jitter_ms=10.0, distribution=Distribution.NORMAL, queue_limit=5000))
    assert delay.netem == Netem(delay_ns=100_000_000, jitter_ns=10_000_000, distribution=Distribution.NORMAL,
                                limit=5000)


class FakeNetem(FakeMechanism):
    mechanism = Mechanism.NETEM
    kinds = (FaultKind.DISCONNECT, FaultKind.LOSS, FaultKind.DELAY)

    def refuses(self, spec):
        return INGRESS_REFUSAL if spec.selector.direction is not Direction.EGRESS else ""


def test_auto_prefers_ebpf_and_falls_back_to_netem_for_what_ebpf_cannot():
    engine = FaultEngine([FakeMechanism(), FakeNetem()], {}, LINKS.get)
    try:
        plain = engine.apply(raw(kind=FaultKind.LOSS, loss_percent=20.0, delay_ms=None))
        assert plain.mechanism is Mechanism.EBPF_TC
        corr = engine.apply(raw(kind=FaultKind.LOSS, loss_percent=20.0, correlation=25.0, delay_ms=None,
                                direction=Direction.EGRESS, direction_unspecified=False))
        assert corr.mechanism is Mechanism.NETEM
        with pytest.raises(FailedPrecondition, match="EBPF_TC unavailable: loss correlation needs netem"):
            engine.apply(raw(kind=FaultKind.LOSS, loss_percent=20.0, correlation=25.0, delay_ms=None,
                             mechanism=Mechanism.EBPF_TC))
        with pytest.raises(FailedPrecondition, match="NETEM: netem shapes egress only"):
            engine.apply(raw(direction=Direction.INGRESS, direction_unspecified=False))
    finally:
        engine.close()


@pytest.mark.parametrize("n", [
    Netem(delay_ns=100_000_000, jitter_ns=10_000_000, distribution=Distribution.PARETONORMAL, delay_correlation=25),
    Netem(gilbert_elliott=GilbertElliott(5, 30, 90, 1)),
    Netem(loss=20, loss_correlation=25),
    Netem(rate_bps=40 * 10**9, delay_ns=5_000_000),           # needs the 64-bit rate attribute
    Netem(delay_ns=10**7, reorder=25, reorder_correlation=50),
    Netem(corrupt=1, duplicate=2, duplicate_correlation=10),
    Netem(delay_ns=10**8, jitter_ns=10**7, preserve_order=True),
])
def test_encoding_survives_a_netlink_round_trip(n):
    netem_nla.register()
    msg = tcmsg()
    msg["attrs"] = [("TCA_KIND", "netem"), ("TCA_OPTIONS", netem_nla.encode(n, 4321))]
    msg.encode()
    back = tcmsg(msg.data)
    back.decode()
    assert netem_nla.observed(back.get_attr("TCA_OPTIONS")) == netem_nla.expected(n, 4321)


def test_encoding_details_the_kernel_relies_on():
    assert netem_nla.prob(100) == 2**32 - 1 and netem_nla.prob(0) == 0
    ge = netem_nla.expected(Netem(gilbert_elliott=GilbertElliott(5, 30, 90, 1)), 1000)
    # The kernel loses in the bad state when a draw exceeds h: h carries 1 - (tc's "1-h").
    assert ge["ge_h"] == netem_nla.prob(10) and ge["ge_k1"] == netem_nla.prob(1) and ge["loss"] == 0
    assert netem_nla.expected(Netem(delay_ns=1, jitter_ns=5, preserve_order=True), 1)["rate"] > 10**12
    assert netem_nla.expected(Netem(reorder=10, delay_ns=10**6), 1)["gap"] == 1


IPROUTE2_TABLES = [Path(p) for p in ("/usr/lib/tc", "/lib/x86_64-linux-gnu/tc", "/usr/lib/x86_64-linux-gnu/tc")]


@pytest.mark.parametrize("dist", [Distribution.NORMAL, Distribution.PARETO, Distribution.PARETONORMAL])
def test_delay_tables_match_the_ones_iproute2_ships(dist):
    found = [d / f"{dist.value}.dist" for d in IPROUTE2_TABLES if (d / f"{dist.value}.dist").exists()]
    if not found:
        pytest.skip("iproute2's .dist tables are not installed here")
    theirs = [int(x) for x in found[0].read_text().split() if x.lstrip("-").isdigit()]
    ours = netem_dist.table(dist)
    assert len(ours) == len(theirs) == netem_dist.SIZE
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 1


def test_normal_table_has_unit_spread():
    t = netem_dist.table(Distribution.NORMAL)
    mean = sum(t) / len(t) / netem_dist.SCALE
    sd = (sum((x / netem_dist.SCALE - mean) ** 2 for x in t) / len(t)) ** 0.5
    assert abs(mean) < 0.01 and abs(sd - 1) < 0.02


def test_queue_limit_holds_a_delay_worth_of_traffic():
    assert queue_limit(Netem(loss=20)) == MIN_LIMIT
    # 10 Gbit/s of 1500-byte packets for 100 ms (+50 %): far above netem's default 1000.
    assert queue_limit(Netem(delay_ns=100_000_000)) == math.ceil(10e9 / 12000 * 0.1 * 1.5)
    assert queue_limit(Netem(delay_ns=2_000_000_000, rate_bps=10**6)) == MIN_LIMIT
