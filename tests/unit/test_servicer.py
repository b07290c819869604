"""A real in-process gRPC server on an ephemeral port, the engine behind it on a fake mechanism."""

from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from faultline.v1 import agent_pb2 as pb
from faultline.v1 import agent_pb2_grpc as pb_grpc

from agent.domain.engine import FaultEngine
from agent.domain.spec import Mechanism
from agent.kernel.capabilities import Feature
from agent.rpc.servicer import AgentServicer
from agent.runtime import AgentConfig
from controller.client import AgentClient, InvalidRequest, UnknownFault, Unsupported, fault_spec
from tests.fakes import LINKS, FakeMechanism


@pytest.fixture
def client():
    engine = FaultEngine([FakeMechanism()], {Mechanism.NETEM: "this kernel has no netem"}, LINKS.get)
    runtime = SimpleNamespace(
        engine=engine, kernel_release="test", config=AgentConfig(listen="127.0.0.1:7070", state_dir=Path("/x")),
        features=[Feature("netem", False, "this kernel has no netem")],
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_AgentServicer_to_server(AgentServicer(runtime), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with AgentClient(f"127.0.0.1:{port}") as c:
        yield c
    server.stop(0)
    engine.close()


def test_apply_returns_id_mechanism_and_both_clocks(client):
    r = client.apply(fault_spec("loss", "lab0", peers=["10.77.0.2/32", "fd77::2/128"], ports=[4002],
                                loss_percent=20, lease_s=5))
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
        (fault_spec("loss", "lab0", loss_percent=0), "spec.loss.percent"),
        (fault_spec("loss", "lab0", loss_percent=120), "spec.loss.percent"),
        (fault_spec("disconnect", "lab0", lease_s=0.01), "spec.lease_ms"),
        (fault_spec("disconnect", "lab0", lease_s=7200), "spec.lease_ms"),
        (fault_spec("disconnect", "lab0", peers=["10.1.2.3/8"]), "spec.selector.peer_cidrs[0]"),
        (fault_spec("disconnect", "lab0", ports=[70000]), "spec.selector.ports[0]"),
        (fault_spec("disconnect", "nope0"), "spec.selector.interface"),
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
    spec = fault_spec("disconnect", "lab0", mechanism="netem")
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
    assert list(caps.excluded_ports) == [7070, 22]
