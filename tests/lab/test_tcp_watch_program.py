"""The probe program on its own (root, bcc): both transports deliver the same events."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from faultline.agent.domain.events import EventKind, watch_filter
from testkit.netns import why_no_lab


@pytest.mark.parametrize("ring_buffer", [True, False], ids=["ring buffer", "perf buffer"])
def test_a_loopback_connection_is_seen(ring_buffer):
    why = why_no_lab()
    if why:
        pytest.skip(why)
    from faultline.agent.kernel.tcp_watch import TcpWatchProgram

    p = TcpWatchProgram(ring_buffer=ring_buffer)
    try:
        assert p.transport == ("ring buffer" if ring_buffer else "perf buffer")
        p.set_local_addrs([ipaddress.ip_address("127.0.0.1")])
        p.set_watcher(3, watch_filter([EventKind.STATE], [45679], [], 100))
        p.attach([EventKind.STATE])
        srv = socket.create_server(("127.0.0.1", 45679))
        cli = socket.create_connection(("127.0.0.1", 45679))
        conn, _ = srv.accept()
        for s in (cli, conn, srv):
            s.close()
        got: list = []
        for _ in range(5):
            p.poll(100, 0, lambda mask, ev: got.append((mask, ev)))
        states = [(e.flow.local_port == 45679, e.old_state, e.new_state) for m, e in got if m == 1 << 3]
        # The client: CLOSE -> SYN_SENT -> ESTABLISHED; the server's socket: SYN_RECV -> ESTABLISHED.
        assert (False, 7, 2) in states and (False, 2, 1) in states and (True, 3, 1) in states, states
        assert p.totals() == (len(got), 0)
    finally:
        p.attach([])
        p.close()
