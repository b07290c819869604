"""A real in-process gRPC server on an ephemeral port, the engine behind it on a fake mechanism."""

import time

import grpc
import pytest

from faultline.agent.domain.clock import now
from faultline.agent.domain.events import EventKind, Flow, TcpEvent
from faultline.controller.agents.client import AgentClient, InvalidRequest, UnknownFault, Unsupported, WatchRecorder
from faultline.controller.agents.spec import Disconnect, Loss, fault_spec, watch_filter
from faultline.v1 import agent_pb2 as pb
from tests.fakes import FakeProbe, fake_agent


@pytest.fixture
def probe():
    return FakeProbe()


@pytest.fixture
def client(probe):
    with fake_agent(probe) as (address, _), AgentClient(address) as c:
        yield c


def test_apply_returns_id_mechanism_and_both_clocks(client):
    r = client.apply(fault_spec(Loss(percent=20), "lab0", peers=["10.77.0.2/32", "fd77::2/128"], ports=[4002],
                                lease_s=5))
    assert r.fault_id.startswith("f-") and r.mechanism == pb.MECHANISM_EBPF_TC
    assert r.applied_at.realtime_ns > 1.6e18 and r.applied_at.monotonic_ns > 0
    assert r.lease_expires_at.monotonic_ns - r.applied_at.monotonic_ns == 5_000_000_000
    [f] = client.list()
    assert f.spec.loss.percent == 20 and list(f.spec.selector.peer_cidrs) == ["10.77.0.2/32", "fd77::2/128"]
    assert f.counters.matched == 5
    assert client.heal(r.fault_id).state == pb.FAULT_STATE_HEALED


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (fault_spec(Loss(percent=0), "lab0"), "spec.loss.percent"),
        (fault_spec(Loss(percent=120), "lab0"), "spec.loss.percent"),
        (fault_spec(Disconnect(), "lab0", lease_s=0.01), "spec.lease_ms"),
        (fault_spec(Disconnect(), "lab0", lease_s=7200), "spec.lease_ms"),
        (fault_spec(Disconnect(), "lab0", peers=["10.1.2.3/8"]), "spec.selector.peer_cidrs[0]"),
        (fault_spec(Disconnect(), "lab0", ports=[70000]), "spec.selector.ports[0]"),
        (fault_spec(Disconnect(), "nope0"), "spec.selector.interface"),
        (pb.FaultSpec(kind=77, selector=pb.Selector(interface="lab0"), lease_ms=1000), "spec.kind"),
        (pb.FaultSpec(selector=pb.Selector(interface="lab0"), lease_ms=1000), "spec.kind"),
    ],
)
def test_invalid_fields_are_invalid_argument_naming_the_field(client, spec, field):
    with pytest.raises(InvalidRequest) as e:
        client.apply(spec)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message.startswith(field)
    assert client.list() == []


def test_missing_kernel_feature_is_failed_precondition(client):
    spec = fault_spec(Disconnect(), "lab0", mechanism="netem")
    with pytest.raises(Unsupported, match="no netem"):
        client.apply(spec)
    delay = pb.FaultSpec(kind=pb.FAULT_KIND_DELAY, selector=pb.Selector(interface="lab0"), lease_ms=1000,
                         delay=pb.DelayParams(delay_ms=100))
    with pytest.raises(Unsupported, match="no mechanism on this host does DELAY"):
        client.apply(delay)


def test_unknown_fault_is_not_found(client):
    with pytest.raises(UnknownFault):
        client.heal("f-missing")


def test_capabilities_report_reasons(client):
    caps = client.capabilities()
    kinds = {k.kind: k for k in caps.kinds}
    assert list(kinds[pb.FAULT_KIND_LOSS].mechanisms) == [pb.MECHANISM_EBPF_TC]
    assert "no netem" in kinds[pb.FAULT_KIND_DELAY].reason
    # No mechanism of this version does RESET: its reason must not blame netem.
    assert kinds[pb.FAULT_KIND_RESET].reason == "no mechanism of this agent version does it yet"
    assert list(caps.excluded_ports) == [7070, 22]


def _state(port: int, new: int, sock: int = 0xABC) -> TcpEvent:
    return TcpEvent(EventKind.STATE, now(), Flow("10.77.0.1", 40000, "10.77.0.2", port), sock, 2, new)


def test_watch_streams_ready_then_events_and_detaches_when_cancelled(client, probe):
    w = client.watch(watch_filter(kinds=["state"], ports=[4002]))
    assert w.watching.transport == "fake buffer" and list(w.watching.probes) == ["STATE"]
    assert list(w.watching.local_addrs) == ["10.77.0.1"] and probe.attached() == {EventKind.STATE}
    rec = WatchRecorder(w)
    probe.push(_state(4002, 1), _state(5000, 1))  # the second is outside the filter
    first = rec.wait_for(lambda i: i.HasField("tcp"), 5)
    assert first.tcp.new_state == pb.TCP_STATE_ESTABLISHED and first.tcp.flow.remote_port == 4002
    assert first.at.realtime_ns > 1.6e18 and first.tcp.kind == pb.EVENT_KIND_STATE
    rec.stop()
    deadline = time.monotonic() + 5
    while probe.attached() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.attached() == frozenset() and probe.filters == {}
    assert [e.remote_port for e in rec.tcp()] == [4002]
    assert client.health().status == "SERVING"  # the agent serves on


def test_watch_refuses_bad_filters_naming_the_field(client, probe):
    with pytest.raises(InvalidRequest, match=r"filter.ports\[1\]: a port from 1 to 65535"):
        client.watch(watch_filter(ports=[80, 70000]))
    with pytest.raises(InvalidRequest, match=r"filter.peer_cidrs\[0\]"):
        client.watch(watch_filter(peers=["10.0.0.300/32"]))
    with pytest.raises(InvalidRequest, match=r"filter.rtt_interval_ms: 0 to 60000 ms"):
        client.watch(watch_filter(rtt_interval_ms=70000))
    assert probe.attached() == frozenset() and probe.filters == {}


def test_summarize_reports_per_flow_counts(client, probe):
    w = client.watch(watch_filter(kinds=["state", "retransmit", "rtt"]))
    rec = WatchRecorder(w)
    t = now()
    probe.push(_state(4002, 1, sock=7),
               TcpEvent(EventKind.RETRANSMIT, t, Flow("10.77.0.1", 40000, "10.77.0.2", 4002), 7, 0, 1),
               TcpEvent(EventKind.RTT, t, Flow("10.77.0.1", 40000, "10.77.0.2", 4002), 7, 0, 1, srtt_us=250))
    assert rec.wait_for(lambda i: i.tcp.kind == pb.EVENT_KIND_RTT, 5)
    r = client.summarize(watch_filter(ports=[4002]))
    [f] = r.flows
    assert (f.retransmits, f.rtt_samples, f.rtt_p50_us, f.state) == (1, 1, 250, pb.TCP_STATE_ESTABLISHED)
    assert r.watchers == 1 and r.events_matched == 3
    assert client.summarize(watch_filter(ports=[9])).flows == []
    rec.stop()


def test_clock_offset_found_within_its_bound(client, monkeypatch):
    from faultline.agent.domain import clock
    from faultline.controller.agents.clocksync import sync

    real = clock.now
    monkeypatch.setattr(clock, "now", lambda: real().plus(2_000_000_000))  # the agent's clock 2 s ahead
    c = sync(client, samples=8)
    assert abs(c.offset_ns - 2_000_000_000) <= c.uncertainty_ns + 1_000
    assert 0 < c.uncertainty_ns < 50_000_000 and c.samples == 8
    assert abs(c.to_controller(real().realtime_ns + 2_000_000_000) - real().realtime_ns) < 50_000_000
