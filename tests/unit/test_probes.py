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
