"""Must show 3 and 4: kill -9 + restart, and lease expiry, both return the kernel to its prior state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Disconnect, Loss, fault_spec
from testkit.netns import in_ns, tc_state, without_agent


def journal_size(host) -> int:
    p = Path(host.state_dir) / "journal.jsonl"
    return p.stat().st_size if p.exists() else 0


def hooks_size(host) -> int:
    p = Path(host.state_dir) / "hooks.jsonl"
    return p.stat().st_size if p.exists() else 0


@contextmanager
def agent_stopped_by(lab, name: str, sig: int):
    """Stop a host's agent with `sig`; start it again afterwards, whatever the test found."""
    host = lab.state.hosts[name]
    os.kill(host.pid, sig)
    os.waitpid(host.pid, 0)
    try:
        yield host
    finally:
        lab.state.hosts[name] = lab.restart_agent(name)


def pings(lab, src: str, dst: str) -> bool:
    r = subprocess.run(in_ns(lab.state.hosts[src].netns, "ping", "-c1", "-W1", lab.state.hosts[dst].ipv4),
                       capture_output=True, check=False)
    return r.returncode == 0


def test_kill_9_then_restart_restores_tc_state(lab, agents):
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    agents["trader"].apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"],
                                      lease_s=300))
    agents["trader"].apply(fault_spec(Loss(percent=50), "lab0", ports=[9999], lease_s=300))
    assert tc_state(host.netns, host.interface) != before
    assert journal_size(host) > 0

    with agent_stopped_by(lab, "trader", signal.SIGKILL):
        # The program outlives the agent: the kernel still drops. Only the journal can undo it now.
        assert not pings(lab, "trader", "gateway")
    restarted = lab.state.hosts["trader"]
    assert tc_state(host.netns, host.interface) == before
    assert journal_size(restarted) == 0
    assert pings(lab, "trader", "gateway")
    with AgentClient(restarted.agent) as c:
        assert c.list() == []


def test_cleanup_command_reverts_without_serving(lab, agents):
    host = lab.state.hosts["broker"]
    before = tc_state(host.netns, host.interface)
    agents["broker"].apply(fault_spec(Disconnect(), "lab0", peers=["fd78::1/128"], lease_s=300))
    with agent_stopped_by(lab, "broker", signal.SIGKILL):
        assert tc_state(host.netns, host.interface) != before
        agent_cli = str(Path(sys.executable).parent / "faultline-agent")
        out = subprocess.run([agent_cli, "cleanup", "--state-dir", host.state_dir],
                             capture_output=True, text=True, check=True).stdout
        assert "removed faultline filter" in out and "removed clsact" in out
        assert tc_state(host.netns, host.interface) == without_agent(before)
        assert journal_size(host) == 0 and hooks_size(host) == 0
    assert tc_state(host.netns, host.interface) == before  # the restarted agent has its clsact again


def test_sigterm_heals_before_exit(lab, agents):
    host = lab.state.hosts["gateway"]
    before = tc_state(host.netns, host.interface)
    agents["gateway"].apply(fault_spec(Disconnect(), "lab0", peers=["10.78.0.1/32"], lease_s=300))
    with agent_stopped_by(lab, "gateway", signal.SIGTERM):
        # Healed, and the agent's own clsact gone with it: the host as it was without faultline.
        assert tc_state(host.netns, host.interface) == without_agent(before) != before
        assert journal_size(host) == 0 and hooks_size(host) == 0


def test_lease_expiry_with_no_controller(lab, agents):
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    with AgentClient(host.agent) as c:  # this controller goes away at once
        r = c.apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"], lease_s=3.0))
    assert not pings(lab, "trader", "gateway")
    while time.monotonic_ns() < r.lease_expires_at.monotonic_ns + 300_000_000:
        time.sleep(0.05)
    assert tc_state(host.netns, host.interface) == before
    assert journal_size(host) == 0
    with AgentClient(host.agent) as c:
        [healed] = c.list(include_healed=True)[:1]
    assert healed.fault_id == r.fault_id and healed.state == 3  # FAULT_STATE_EXPIRED
    assert pings(lab, "trader", "gateway")
