"""Probes against real local servers and commands: pass, fail, and say why."""

from __future__ import annotations

import http.server
import socket
import sys
import threading

import pytest

from faultline.controller.agents.events import TcpEvent
from faultline.controller.model.scenario import Probe
from faultline.controller.run.probes import FlowStates, Prober
from faultline.v1 import agent_pb2 as pb


@pytest.fixture
def prober():
    flows = FlowStates()
    return Prober(lambda s: s.replace("{here}", "127.0.0.1"), lambda h, argv: list(argv),
                  lambda h: flows if h == "trader" else None), flows


@pytest.fixture
def web():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


def test_http(prober, web):
    p, _ = prober
    ok = p.run(Probe("h", "http", {"url": f"http://{{here}}:{web}/ok"}))
    bad = p.run(Probe("h", "http", {"url": f"http://{{here}}:{web}/down"}))
    assert ok.ok and ok.detail.endswith(": 200")
    assert not bad.ok and bad.detail.endswith(": 503")


def test_tcp(prober):
    p, _ = prober
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    assert p.run(Probe("t", "tcp", {"host": "{here}", "port": port})).ok
    srv.close()
    r = p.run(Probe("t", "tcp", {"host": "{here}", "port": port}, timeout_s=0.5))
    assert not r.ok and "refused" in r.detail.lower()


def test_command_and_counters(prober):
    p, _ = prober
    assert p.run(Probe("c", "command", {"argv": ["true"]})).ok
    r = p.run(Probe("c", "command", {"argv": ["sh", "-c", "echo broken; exit 3"]}))
    assert not r.ok and r.detail == "exit 3: broken"
    code = 'import json; print(json.dumps({"sent": 10, "received": 9, "note": "x"}))'
    r = p.run(Probe("c", "command", {"argv": [sys.executable, "-c", code]}, counters=True))
    assert r.ok and r.counters == {"sent": 10, "received": 9}
    r = p.run(Probe("c", "command", {"argv": ["echo", "not json"]}, counters=True))
    assert not r.ok and "not a JSON object" in r.detail
    r = p.run(Probe("c", "command", {"argv": ["sleep", "5"]}, timeout_s=0.2))
    assert not r.ok and "timed out" in r.detail


def test_established_follows_the_agents_events(prober):
    p, flows = prober
    probe = Probe("e", "established", {"host": "trader", "port": 4002})
    assert not p.run(probe).ok
    # As a watch stream delivers it, turned into the plain value the controller reads.
    item = pb.WatchEvent(at=pb.Timestamp(realtime_ns=7, monotonic_ns=3), tcp=pb.TcpEvent(
        kind=pb.EVENT_KIND_STATE, socket=1, old_state=pb.TCP_STATE_SYN_SENT, new_state=pb.TCP_STATE_ESTABLISHED,
        flow=pb.Flow(local_addr="10.0.0.1", local_port=40000, remote_addr="10.0.0.2", remote_port=4002)))
    ev = TcpEvent.of(item)
    assert (ev.kind, ev.old_state, ev.new_state, ev.realtime_ns, ev.monotonic_ns) == \
        ("STATE", "SYN_SENT", "ESTABLISHED", 7, 3)
    assert ev.flow == "10.0.0.1:40000 -> 10.0.0.2:4002"
    flows.feed(ev)
    assert p.run(probe).ok
    item.tcp.old_state, item.tcp.new_state = pb.TCP_STATE_ESTABLISHED, pb.TCP_STATE_FIN_WAIT1
    flows.feed(TcpEvent.of(item))
    assert not p.run(probe).ok
    r = p.run(Probe("e", "established", {"host": "gateway", "port": 4002}))
    assert not r.ok and r.detail == "no watch on gateway"


def _state(sock: int, old: int, new: int, lport: int) -> TcpEvent:
    return TcpEvent.of(pb.WatchEvent(at=pb.Timestamp(realtime_ns=1, monotonic_ns=1), tcp=pb.TcpEvent(
        kind=pb.EVENT_KIND_STATE, socket=sock, old_state=old, new_state=new,
        flow=pb.Flow(local_addr="10.0.0.1", local_port=lport, remote_addr="10.0.0.2", remote_port=5432))))


def test_a_connection_per_request_client_does_not_flap_established_with_stable_for_s():
    """Each request opens and closes its own connection: `established` alone is down between two
    requests (a false detection); with stable_for_s past the gap it holds while requests get through
    and fails once none has for that long. min counts connections at once."""
    now = [0]
    flows = FlowStates(clock=lambda: now[0])
    p = Prober(lambda s: s, lambda h, argv: list(argv), lambda h: flows)
    plain = Probe("e", "established", {"host": "db", "port": 5432})
    stable = Probe("e", "established", {"host": "db", "port": 5432, "stable_for_s": 1.0})
    two = Probe("e", "established", {"host": "db", "port": 5432, "min": 2, "stable_for_s": 1.0})
    flaps, held = [], []
    for i in range(10):  # a request every 300 ms, each on a new connection that lives 50 ms
        now[0] = i * 300_000_000
        flows.feed(_state(i, pb.TCP_STATE_SYN_SENT, pb.TCP_STATE_ESTABLISHED, 40000 + i))
        now[0] += 50_000_000
        flows.feed(_state(i, pb.TCP_STATE_ESTABLISHED, pb.TCP_STATE_FIN_WAIT1, 40000 + i))
        now[0] += 100_000_000  # between two requests
        flaps.append(p.run(plain).ok)
        held.append(p.run(stable).ok)
    assert not any(flaps) and all(held)
    assert not p.run(two).ok and "1 connection(s)" in p.run(two).detail
    now[0] += 1_100_000_000  # no request for longer than the window: a real outage
    assert not p.run(stable).ok
