"""Observation on Debian's 6.1 kernel with its own headers: every probe verifies, and the
older tracepoint formats (tcp_send_reset without sockaddrs, tcp_probe without skaddr) work."""

from __future__ import annotations

from tests.lab.test_observe import resets_seen


def test_every_probe_verifies_with_matching_headers(trader):
    caps = {f.name: f for f in trader.capabilities().features}
    for tp in ("sock:inet_sock_set_state", "tcp:tcp_retransmit_skb", "tcp:tcp_send_reset",
               "tcp:tcp_receive_reset", "tcp:tcp_probe"):
        assert caps[f"tracepoint:{tp}"].available, caps[f"tracepoint:{tp}"].reason
    # Not used by faultline, so never compiled at start (~35 s under TCG): said present, not "absent".
    kfree = caps["tracepoint:skb:kfree_skb"]
    assert kfree.reason.startswith("present; not compile-checked"), kfree.reason
    assert caps["kprobes"].available


def test_resets_in_the_older_tracepoint_format(vlab, trader):
    here, there = vlab.state.hosts["trader"], vlab.state.hosts["gateway"]
    sent, received = resets_seen(trader, here, there, 4107)
    assert sent is not None and (sent.tcp.flow.local_addr, sent.tcp.flow.local_port) == (here.ipv4, 4107)
    assert sent.tcp.flow.remote_addr == there.ipv4
    assert received is not None and received.tcp.flow.remote_port == 4107
