"""Observation on Debian's 6.1 kernel with its own headers: every probe verifies, skb:kfree_skb
compiles there, and the older tcp_send_reset format (no sockaddrs) is decoded right."""

from __future__ import annotations

from tests.lab.test_observe import resets_seen


def test_every_probe_verifies_with_matching_headers(trader):
    caps = {f.name: f for f in trader.capabilities().features}
    for tp in ("sock:inet_sock_set_state", "tcp:tcp_retransmit_skb", "tcp:tcp_send_reset",
               "tcp:tcp_receive_reset", "tcp:tcp_probe"):
        assert caps[f"tracepoint:{tp}"].available, caps[f"tracepoint:{tp}"].reason
    assert caps["tracepoint:skb:kfree_skb"].available, caps["tracepoint:skb:kfree_skb"].reason
    assert caps["kprobes"].available


def test_resets_in_the_older_tracepoint_format(vlab, trader):
    here, there = vlab.state.hosts["trader"], vlab.state.hosts["gateway"]
    sent, received = resets_seen(trader, here, there, 4107)
    assert sent is not None and (sent.tcp.flow.local_addr, sent.tcp.flow.local_port) == (here.ipv4, 4107)
    assert sent.tcp.flow.remote_addr == there.ipv4
    assert received is not None and received.tcp.flow.remote_port == 4107
