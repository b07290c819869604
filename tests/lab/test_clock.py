"""Clock correction (issue 6's foundation): an agent whose realtime is 2 s off is found 2 s
off, within the bound the exchange gives, and its stamps land in order on the controller's clock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faultline.controller.agents.client import AgentClient, WatchRecorder
from faultline.controller.agents.clocksync import sync
from faultline.controller.agents.spec import Disconnect, fault_spec, watch_filter
from faultline.controller.env.lab import Lab, LabConfig
from testkit.netns import listener, socket_in, why_no_lab

CLOCK_LAB = LabConfig(prefix="flc", subnet4="10.74.0.0/24", subnet6="fd74::/64", run_dir=Path("/run/faultline-clock"))
SKEW_MS = 2000.0


@pytest.fixture(scope="module")
def clab():
    why = why_no_lab()
    if why:
        pytest.skip(why)
    lab = Lab(CLOCK_LAB)
    lab.down()
    lab.state = lab.up(["skewed", "plain"], clock_skew_ms={"skewed": SKEW_MS})
    yield lab
    lab.down()


def test_offsets_found_within_their_bound(clab):
    with AgentClient(clab.state.hosts["skewed"].agent) as s, AgentClient(clab.state.hosts["plain"].agent) as p:
        skewed, plain = sync(s), sync(p)
    assert abs(skewed.offset_ns - SKEW_MS * 1e6) <= skewed.uncertainty_ns + 1_000_000, skewed
    assert abs(plain.offset_ns) <= plain.uncertainty_ns + 1_000_000, plain  # same kernel clock
    assert skewed.uncertainty_ns < 5_000_000


def test_corrected_stamps_order_with_the_controllers(clab):
    h, peer = clab.state.hosts["skewed"], clab.state.hosts["plain"]
    with AgentClient(h.agent) as c:
        off = sync(c)
        rec = WatchRecorder(c.watch(watch_filter(kinds=["state"], ports=[4110])))
        before = time.clock_gettime_ns(time.CLOCK_REALTIME)
        srv = listener(peer.netns, peer.ipv4, 4110)
        cli = socket_in(h.netns)
        cli.connect((peer.ipv4, 4110))
        r = c.apply(fault_spec(Disconnect(), h.interface, peers=[peer.ipv4 + "/32"], lease_s=1))
        after = time.clock_gettime_ns(time.CLOCK_REALTIME)
        up = rec.wait_for(lambda i: i.tcp.new_state == 1, 5)
        rec.stop()
        c.heal(r.fault_id)
        cli.close()
        srv.close()
    bound = off.uncertainty_ns + 1_000_000
    # Raw, the agent's stamps are 2 s in the future; corrected, they fall inside [before, after].
    assert r.applied_at.realtime_ns > after + 1_000_000_000
    assert before - bound <= off.to_controller(r.applied_at.realtime_ns) <= after + bound
    assert up is not None and before - bound <= off.to_controller(up.at.realtime_ns) <= after + bound
    assert off.to_controller(up.at.realtime_ns) <= off.to_controller(r.applied_at.realtime_ns) + bound


def test_coordinated_start_with_an_agent_2s_off(clab, tmp_path):
    """Issue 6 must-show 2: a partition across a 2 s-off agent and a true one starts at one
    instant (skew < 10 ms on the controller's clock) and its marks order correctly."""
    from faultline.controller.model import scenario
    from faultline.controller.run import runner
    from tests.scenarios import partition

    f = tmp_path / "s.yaml"
    f.write_text(partition("skewed", "plain", 2.0))
    o = runner.run(scenario.load(f), runner.RunOptions(out_dir=tmp_path / "run", lab_config=CLOCK_LAB))
    assert o.passed, [v for v in o.verdicts if not v.ok]
    (step,) = o.journal["steps"]
    raw = {a["host"]: a["applied_agent_ns"] - a["applied_ns"] for a in step["applied"]}
    assert abs(raw["skewed"] - SKEW_MS * 1e6) < 5_000_000 and abs(raw["plain"]) < 5_000_000, raw
    assert step["skew_ns"] < 10_000_000, step
    m = o.metrics
    assert m.t_inject < m.t_detect.t_ns < m.t_heal <= m.t_recovered.t_ns, m.as_dict()
    # The skewed agent's kernel events, corrected, fall inside the run and in order.
    events = [e for e in o.journal["kernel_events"] if e["host"] == "skewed"]
    assert events and all(o.journal["started_ns"] <= e["t_ns"] <= o.journal["ended_ns"] for e in events)
    for h in clab.state.hosts.values():
        with AgentClient(h.agent) as c:
            assert c.list() == []
