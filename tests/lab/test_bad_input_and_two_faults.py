"""Must show 5 (bad input changes nothing in the kernel) and 5b (two faults on one interface)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import grpc
import pytest

from faultline.controller.agents.client import InvalidRequest, Unsupported
from faultline.controller.agents.spec import Disconnect, Loss, fault_spec
from faultline.v1 import agent_pb2 as pb
from testkit.netns import in_ns, ping_gaps, read_until, socket_in, tc_state

BAD = [
    (fault_spec(Loss(percent=0), "lab0"), "spec.loss.percent"),
    (fault_spec(Loss(percent=100.01), "lab0"), "spec.loss.percent"),
    (fault_spec(Disconnect(), "lab0", lease_s=0.05), "spec.lease_ms"),
    (fault_spec(Disconnect(), "lab0", lease_s=3601), "spec.lease_ms"),
    (fault_spec(Disconnect(), "lab0", peers=["10.78.0.300/32"]), "spec.selector.peer_cidrs[0]"),
    (fault_spec(Disconnect(), "lab0", peers=["fd78::1/129"]), "spec.selector.peer_cidrs[0]"),
    (fault_spec(Disconnect(), "lab0", ports=[0]), "spec.selector.ports[0]"),
    (fault_spec(Disconnect(), "lab0", ports=[22, 65536]), "spec.selector.ports[1]"),
    (fault_spec(Disconnect(), "eth0"), "spec.selector.interface"),
    (fault_spec(Disconnect(), "lo"), "spec.selector.interface"),
    (pb.FaultSpec(kind=42, selector=pb.Selector(interface="lab0"), lease_ms=1000), "spec.kind"),
    # An unknown enum value is refused naming the field (protocol 99 was taken as ANY: every protocol dropped).
    (pb.FaultSpec(kind=pb.FAULT_KIND_DISCONNECT, selector=pb.Selector(interface="lab0", protocol=99),
                  lease_ms=1000, disconnect=pb.DisconnectParams()), "spec.selector.protocol"),
    (pb.FaultSpec(kind=pb.FAULT_KIND_DISCONNECT, selector=pb.Selector(interface="lab0", direction=9),
                  lease_ms=1000, disconnect=pb.DisconnectParams()), "spec.selector.direction"),
    (pb.FaultSpec(kind=pb.FAULT_KIND_DISCONNECT, selector=pb.Selector(interface="lab0"), mechanism=77,
                  lease_ms=1000, disconnect=pb.DisconnectParams()), "spec.mechanism"),
    (pb.FaultSpec(kind=pb.FAULT_KIND_DELAY, selector=pb.Selector(interface="lab0"), lease_ms=1000,
                  delay=pb.DelayParams(delay_ms=10, jitter_ms=1, distribution=9)), "spec.delay.distribution"),
]


@pytest.mark.parametrize(("spec", "field"), BAD, ids=[f for _, f in BAD])
def test_invalid_field_is_refused_and_kernel_unchanged(lab, agents, spec, field):
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    with pytest.raises(InvalidRequest) as e:
        agents["trader"].apply(spec)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message.startswith(field)
    assert tc_state(host.netns, host.interface) == before


def test_missing_netem_is_failed_precondition_naming_it(lab, agents):
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    caps = {f.name: f for f in agents["trader"].capabilities().features}
    if caps["netem"].available:
        pytest.skip("this kernel has netem; the refusal is for kernels without it")
    with pytest.raises(Unsupported, match="netem"):
        agents["trader"].apply(fault_spec(Disconnect(), "lab0", mechanism="netem"))
    assert tc_state(host.netns, host.interface) == before


def test_two_faults_heal_one_other_holds_bystander_loses_nothing(lab, agents):
    hosts = lab.state.hosts
    trader = agents["trader"]
    # A continuous ping from trader to broker across every apply and heal below.
    ping = subprocess.Popen(in_ns(hosts["trader"].netns, "ping", "-i", "0.02", hosts["broker"].ipv4),
                            stdout=subprocess.PIPE, text=True)
    assert ping.stdout is not None
    first = read_until(ping.stdout, r"icmp_seq=\d+", 20)  # it runs and is answered before any fault
    gw = hosts["gateway"].ipv4
    a = trader.apply(fault_spec(Disconnect(), "lab0", peers=[gw + "/32"], protocol="icmp", lease_s=60))
    b = trader.apply(fault_spec(Loss(percent=100), "lab0", peers=[gw + "/32"], ports=[5300], protocol="udp",
                                lease_s=60))
    rx = socket_in(hosts["gateway"].netns, socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((gw, 5300))
    rx.settimeout(0.5)
    tx = socket_in(hosts["trader"].netns, socket.AF_INET, socket.SOCK_DGRAM)

    def udp_arrives() -> bool:
        tx.sendto(b"x", (gw, 5300))
        try:
            return rx.recv(16) == b"x"
        except TimeoutError:
            return False

    def gateway_pings() -> bool:
        return subprocess.run(in_ns(hosts["trader"].netns, "ping", "-c1", "-W1", gw),
                              capture_output=True, check=False).returncode == 0

    assert not udp_arrives() and not gateway_pings()
    trader.heal(a.fault_id)
    assert gateway_pings()          # the healed fault is gone...
    assert not udp_arrives()        # ...the other still holds
    dropped_before = next(f for f in trader.list() if f.fault_id == b.fault_id).counters.dropped
    assert not udp_arrives()
    assert next(f for f in trader.list() if f.fault_id == b.fault_id).counters.dropped == dropped_before + 1
    trader.heal(b.fault_id)
    assert udp_arrives()
    time.sleep(0.5)
    ping.send_signal(signal.SIGINT)  # ran across every apply and heal above
    out, _ = ping.communicate(timeout=10)
    out = first + out
    replies, lost = ping_gaps(out)
    assert replies > 100 and lost == [], out
    tx.close()
    rx.close()
