"""Issue 39 on the real kernel: a fault stops acting at its lease end even when its agent is dead.
The lease end is in the classifier's own map; ping's timestamps (-D, realtime) show when packets
flowed again, against the lease end the agent answered with."""

from __future__ import annotations

import re
import signal
import subprocess
import time

from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Disconnect, Loss, fault_spec
from testkit.netns import in_ns, tc_state, wait_until
from tests.lab.test_nothing_left_behind import agent_stopped_by

REPLY = re.compile(r"^\[(\d+\.\d+)\] .* icmp_seq=(\d+) ")
INTERVAL_S = 0.01


class Pinger:
    """ping every 10 ms with realtime stamps on each reply; replies() parses what came back."""

    def __init__(self, lab, src: str, dst: str) -> None:
        argv = in_ns(lab.state.hosts[src].netns, "ping", "-D", "-n", "-i", str(INTERVAL_S), "-W", "1",
                     lab.state.hosts[dst].ipv4)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def stop(self) -> list[tuple[float, int]]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        return [(float(m[1]), int(m[2])) for line in out.splitlines() if (m := REPLY.match(line))]


def _filters(host) -> list[object]:
    state = tc_state(host.netns, host.interface)
    return [*state["ingress"], *state["egress"]]


def _past(realtime_ns: int, plus_s: float) -> bool:
    return time.clock_gettime_ns(time.CLOCK_REALTIME) > realtime_ns + int(plus_s * 1e9)


def _flowed_again_s(replies: list[tuple[float, int]], end_ns: int) -> tuple[float, list[float]]:
    """Seconds from the lease end to the first reply after it; and the replies' times around it."""
    end = end_ns / 1e9
    after = [t for t, _ in replies if t >= end]
    assert after, f"no reply after the lease end: {[round(t - end, 3) for t, _ in replies[-5:]]}"
    return after[0] - end, [round(t - end, 3) for t, _ in replies if abs(t - end) < 1]


def test_disconnect_ends_at_its_lease_in_the_kernel_with_the_agent_dead(lab, agents):
    host = lab.state.hosts["trader"]
    r = agents["trader"].apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"],
                                          lease_s=10))
    end = r.lease_expires_at.realtime_ns
    with agent_stopped_by(lab, "trader", signal.SIGKILL):  # nothing restarts it until the block ends
        pinger = Pinger(lab, "trader", "gateway")
        try:
            wait_until(lambda: _past(end, 1.0), 20, "a second past the lease end")
        finally:
            replies = pinger.stop()
        assert _filters(host), "the filter is gone: something cleaned it, the kernel's lease is not what ended it"
        before = [t for t, _ in replies if t < end / 1e9]
        assert not before, f"replies while the DISCONNECT was in force: {len(before)}"
        late_s, around = _flowed_again_s(replies, end)
        assert late_s < 0.1, f"traffic flowed {late_s * 1000:.0f} ms after the lease end: {around}"
        print(f"\nDISCONNECT, agent dead: first reply {late_s * 1000:.1f} ms after the lease end")
    with AgentClient(lab.state.hosts["trader"].agent) as again:  # the next start cleans what stayed
        assert again.list() == [] and _filters(lab.state.hosts["trader"]) == []


def test_loss_ends_at_its_lease_in_the_kernel_with_the_agent_dead(lab, agents):
    r = agents["trader"].apply(fault_spec(Loss(percent=60), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"],
                                          direction="egress", lease_s=4))
    end = r.lease_expires_at.realtime_ns
    with agent_stopped_by(lab, "trader", signal.SIGKILL):
        pinger = Pinger(lab, "trader", "gateway")
        try:
            wait_until(lambda: _past(end, 1.5), 15, "past the lease end")
        finally:
            replies = pinger.stop()
    seqs = {s: t for t, s in replies}
    first, last = min(seqs), max(seqs)
    # Replies stamped before the end: some lost (the loss acted); from 100 ms after it: none lost.
    during = [s for s in range(first, last) if s not in seqs and seqs.get(s - 1, 0) < end / 1e9 - 0.05]
    tail = sorted(s for s, t in seqs.items() if t > end / 1e9 + 0.1)
    assert during, "no ping lost during the LOSS"
    missing = [s for s in range(tail[0], tail[-1]) if s not in seqs]
    assert len(tail) > 50 and missing == [], f"{len(missing)} lost after the lease end: {missing[:10]}"


def test_renew_lease_moves_the_kernels_deadline(lab, agents):
    """Renewed from 2 s to 5 s, then the agent killed: the drop lasts to the renewed end (a
    renew that did not reach the kernel would let traffic through at 2 s)."""
    c = agents["trader"]
    r = c.apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"], lease_s=2))
    renewed = c.renew(r.fault_id, 5).lease_expires_at.realtime_ns
    with agent_stopped_by(lab, "trader", signal.SIGKILL):
        pinger = Pinger(lab, "trader", "gateway")
        try:
            wait_until(lambda: _past(renewed, 1.0), 15, "past the renewed end")
        finally:
            replies = pinger.stop()
        early = [round(t - r.lease_expires_at.realtime_ns / 1e9, 3) for t, _ in replies if t < renewed / 1e9]
        assert not early, f"replies before the renewed end (seconds after the first): {early[:10]}"
        late_s, around = _flowed_again_s(replies, renewed)
        assert late_s < 0.1, f"traffic flowed {late_s * 1000:.0f} ms after the renewed end: {around}"
        print(f"\nrenewed DISCONNECT, agent dead: first reply {late_s * 1000:.1f} ms after the renewed end")
