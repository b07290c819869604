"""Must show 1: DISCONNECT stops a TCP connection both ways for the lease, then it carries data again."""

from __future__ import annotations

import socket
import time

import pytest

from faultline.controller.agents.spec import Disconnect, fault_spec
from testkit.netns import socket_in, tc_state


def connected_pair(lab, client_host: str, server_host: str, family: int, port: int):
    srv_host, cli_host = lab.state.hosts[server_host], lab.state.hosts[client_host]
    addr = srv_host.ipv4 if family == socket.AF_INET else srv_host.ipv6
    srv = socket_in(srv_host.netns, family)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    cli = socket_in(cli_host.netns, family)
    cli.settimeout(3)
    cli.connect((addr, port))
    conn, _ = srv.accept()
    srv.close()
    return cli, conn


def receive(b: socket.socket, n: int, timeout: float) -> bytes:
    """Up to n bytes that arrive on b within timeout."""
    got = b""
    deadline = time.monotonic() + timeout
    b.settimeout(0.2)
    while len(got) < n and time.monotonic() < deadline:
        try:
            chunk = b.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        got += chunk
    return got


def carries(a: socket.socket, b: socket.socket, payload: bytes, timeout: float) -> bool:
    """Does `payload` sent on a arrive on b within timeout?"""
    a.sendall(payload)
    return receive(b, len(payload), timeout) == payload


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_disconnect_cuts_both_ways_then_heals(lab, agents, family):
    hosts = lab.state.hosts
    port = 5100 + family
    cli, conn = connected_pair(lab, "trader", "gateway", family, port)
    bcli, bconn = connected_pair(lab, "broker", "gateway", family, port + 1)
    assert carries(cli, conn, b"before", 2) and carries(conn, cli, b"before", 2)

    gw = hosts["gateway"].ipv4 + "/32" if family == socket.AF_INET else hosts["gateway"].ipv6 + "/128"
    lease_s = 4.0
    r = agents["trader"].apply(fault_spec(Disconnect(), "lab0", peers=[gw], direction="both", lease_s=lease_s))
    filters = tc_state(hosts["trader"].netns, "lab0")
    assert any(f.get("options", {}).get("bpf_name") == "fl_egress" for f in filters["egress"]), filters
    assert any(f.get("options", {}).get("bpf_name") == "fl_ingress" for f in filters["ingress"]), filters

    # Both directions carry nothing while the fault holds...
    assert not carries(cli, conn, b"trader->gateway", 1.0)
    assert not carries(conn, cli, b"gateway->trader", 1.0)
    # ...broker <-> gateway is untouched, and every agent still answers the controller.
    assert carries(bcli, bconn, b"broker-ok", 1.0) and carries(bconn, bcli, b"broker-ok", 1.0)
    for c in agents.values():
        assert c.health(timeout_s=1).status == "SERVING"
    [f] = agents["trader"].list()
    assert f.counters.dropped >= 2 and f.counters.matched == f.counters.dropped

    # The lease ends the fault by itself; TCP's retransmissions then deliver what was held back.
    while time.monotonic_ns() < r.lease_expires_at.monotonic_ns + 200_000_000:
        time.sleep(0.1)
    assert agents["trader"].list() == []
    assert receive(conn, len(b"trader->gateway"), 15) == b"trader->gateway"
    assert receive(cli, len(b"gateway->trader"), 15) == b"gateway->trader"
    assert carries(cli, conn, b"after", 5) and carries(conn, cli, b"after", 5)
    for s in (cli, conn, bcli, bconn):
        s.close()


def test_agent_stays_reachable_inside_a_faulted_subnet(lab, agents):
    """A disconnect of the whole lab subnet, controller included, still leaves the agent port open."""
    agents["trader"].apply(fault_spec(Disconnect(), "lab0", peers=["10.78.0.0/24"], lease_s=5))
    assert agents["trader"].health(timeout_s=2).active_faults == 1
    assert agents["trader"].list()[0].fault_id
