"""Issue 32, coordinated starts on the real kernel: a fault with a start instant is made in the
kernel unarmed and answered PENDING at once; it is listed, healable, undone by SIGTERM and by a
restart after kill -9, and it holds no gRPC worker while it waits."""

from __future__ import annotations

import signal
import time

from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Disconnect, Reset, fault_spec, process_spec
from faultline.v1 import agent_pb2 as pb
from testkit.netns import proc_state, tc_state, wait_until
from tests.lab.test_component_faults import start_in
from tests.lab.test_nothing_left_behind import agent_stopped_by, pings


def _at(c: AgentClient, seconds: float) -> int:
    """An instant `seconds` ahead on the agent's clock (one host: the clocks agree)."""
    return c.sync_clock(time.clock_gettime_ns(time.CLOCK_REALTIME)).received.realtime_ns + int(seconds * 1e9)


def _state(c: AgentClient, fault_id: str) -> int:
    return next(f.state for f in c.list(include_healed=True) if f.fault_id == fault_id)


def _disconnect(lab, lease_s: float = 30) -> pb.FaultSpec:
    return fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"], lease_s=lease_s)


def test_pending_disconnect_is_listed_does_not_act_then_acts_at_its_instant(lab, agents):
    c = agents["trader"]
    start = _at(c, 1.5)
    r = c.apply(_disconnect(lab), start, wait_s=2)
    assert r.state == pb.FAULT_STATE_PENDING and r.starts_at.realtime_ns == start
    listed = next(f for f in c.list() if f.fault_id == r.fault_id)
    assert listed.state == pb.FAULT_STATE_PENDING and listed.starts_at.realtime_ns == start
    assert pings(lab, "trader", "gateway"), "a pending DISCONNECT already dropped packets"
    wait_until(lambda: _state(c, r.fault_id) == pb.FAULT_STATE_ACTIVE, 10, "the disconnect armed")
    f = next(f for f in c.list() if f.fault_id == r.fault_id)
    assert 0 <= f.applied_at.realtime_ns - start < 50_000_000, f.applied_at.realtime_ns - start
    assert not pings(lab, "trader", "gateway")
    c.heal(r.fault_id)
    assert pings(lab, "trader", "gateway")


def test_heal_and_heal_all_cancel_pending_starts_before_they_act(lab, agents):
    c = agents["trader"]
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    start = _at(c, 1.0)
    a = c.apply(_disconnect(lab), start, wait_s=2)
    b = c.apply(_disconnect(lab), start, wait_s=2)
    assert c.heal(a.fault_id).state == pb.FAULT_STATE_HEALED
    assert [f.fault_id for f in c.heal_all()] == [b.fault_id]
    assert tc_state(host.netns, host.interface) == before
    # Past the instant: neither armed (the absence of a drop is only seen by waiting past it).
    wait_until(lambda: c.sync_clock(0).received.realtime_ns > start + 200_000_000, 5, "past the instant")
    assert pings(lab, "trader", "gateway")
    assert {f.fault_id: f.state for f in c.list(include_healed=True) if f.fault_id in (a.fault_id, b.fault_id)} \
        == {a.fault_id: pb.FAULT_STATE_HEALED, b.fault_id: pb.FAULT_STATE_HEALED}


def test_100_pending_starts_hold_no_worker_health_and_heal_all_answer_within_100ms(lab, agents):
    """The finding: 24 waiting starts took every gRPC worker. Now 100 are accepted one after
    another, and Health and HealAll answer inside a 100 ms deadline."""
    c = agents["trader"]
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    start = _at(c, 30)
    ids = [c.apply(_disconnect(lab, 60), start, wait_s=31).fault_id for _ in range(30)]
    ids += [c.apply(fault_spec(Reset(), "", peers=["10.99.0.1/32"], ports=[1000 + i], lease_s=60),
                    start, wait_s=31).fault_id for i in range(70)]
    assert sorted(f.fault_id for f in c.list() if f.state == pb.FAULT_STATE_PENDING) == sorted(ids)
    c.health()  # the channel warm: the deadline below is the agent's answer, not a connect
    assert c.health(timeout_s=0.1).active_faults == 100
    with AgentClient(host.agent, timeout_s=0.1) as quick:
        assert sorted(f.fault_id for f in quick.heal_all()) == sorted(ids)
    assert c.list() == [] and tc_state(host.netns, host.interface) == before


def _filters(host) -> dict[str, object]:
    """The interface's tc filters (the agent may keep its clsact between faults)."""
    state = tc_state(host.netns, host.interface)
    return {"ingress": state["ingress"], "egress": state["egress"]}


def test_sigterm_and_kill_9_undo_a_pending_start(lab, agents):
    host = lab.state.hosts["trader"]
    before = _filters(host)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with AgentClient(host.agent) as c:
            c.apply(_disconnect(lab), _at(c, 20), wait_s=21)
        assert _filters(host) != before  # made in the kernel, unarmed
        with agent_stopped_by(lab, "trader", sig):
            if sig == signal.SIGTERM:  # its own shutdown undid it
                assert _filters(host) == before
                assert [q["kind"] for q in tc_state(host.netns, host.interface)["qdisc"]] == ["noqueue"]
        host = lab.state.hosts["trader"]  # restarted: after kill -9 the journal undid it
        assert _filters(host) == before, signal.Signals(sig).name
        with AgentClient(host.agent) as again:
            assert again.list() == []


def test_a_pending_pause_stops_nothing_until_its_instant(lab, agents):
    c = agents["broker"]
    victim = start_in(lab, "broker", "/bin/sleep", "1011")
    try:
        r = c.apply(process_spec("pause", 10, pid=victim.pid), _at(c, 1.0), wait_s=2)
        assert r.state == pb.FAULT_STATE_PENDING and proc_state(victim.pid) == "S"
        wait_until(lambda: proc_state(victim.pid) == "T", 10, "paused at its instant")
        c.heal(r.fault_id)
        assert proc_state(victim.pid) == "S"
    finally:
        victim.kill()
        victim.wait()
