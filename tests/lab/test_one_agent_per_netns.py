"""Issue 32 on the real kernel: one agent per network namespace, and recovery that undoes each
record in the namespace it was made in, whatever `--netns` the next start has."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Disconnect, fault_spec
from testkit.netns import tc_state, wait_until
from tests.lab.test_nothing_left_behind import agent_stopped_by, journal_size, pings


def agent(*args: str) -> list[str]:
    """faultline-agent with args, as this interpreter runs it."""
    return [sys.executable, "-m", "faultline.agent.cli", *args]
SPARE_NS = "flx-spare"  # made and removed here: a namespace no lab agent serves


@pytest.fixture
def spare_ns():
    subprocess.run(["ip", "netns", "add", SPARE_NS], check=True)
    try:
        yield SPARE_NS
    finally:
        subprocess.run(["ip", "netns", "del", SPARE_NS], check=False)


def test_a_second_agent_in_a_served_namespace_refuses_naming_the_first(lab, agents, tmp_path):
    host = lab.state.hosts["gateway"]
    r = agents["gateway"].apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["trader"].ipv4 + "/32"],
                                           lease_s=300))
    other = tmp_path / "other-state"
    second = subprocess.run(agent("serve", "--netns", host.netns, "--insecure", "--listen", "127.0.0.1:7072",
                                   "--state-dir", str(other)), capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 2, second.stderr
    assert "is served by another agent (pid " in second.stderr and host.state_dir in second.stderr, second.stderr
    assert "one agent per namespace" in second.stderr and "Traceback" not in second.stderr
    assert [f.fault_id for f in agents["gateway"].list()] == [r.fault_id]  # the first kept its fault
    assert not pings(lab, "gateway", "trader")
    agents["gateway"].heal(r.fault_id)


def test_a_start_with_another_netns_undoes_the_first_namespaces_records_there(lab, agents, spare_ns):
    """The trader's agent dies with a DISCONNECT in fl-trader; an agent started on its state dir
    but in another namespace undoes the filter in fl-trader, not on its own same-named lab0."""
    host = lab.state.hosts["trader"]
    agents["trader"].apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"],
                                      lease_s=300))
    with agent_stopped_by(lab, "trader", signal.SIGKILL):
        assert tc_state(host.netns, host.interface)["egress"] or tc_state(host.netns, host.interface)["ingress"]
        log = Path(host.state_dir).parent / "spare-agent.log"
        with open(log, "wb") as out:
            spare = subprocess.Popen(agent("serve", "--netns", spare_ns, "--insecure", "--listen",
                                            "127.0.0.1:7073", "--state-dir", host.state_dir),
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: "serving on" in log.read_text() or spare.poll() is not None, 120, "the spare serving")
            assert spare.poll() is None, log.read_text()
            state = tc_state(host.netns, host.interface)
            assert state["egress"] == [] and state["ingress"] == [], state
            assert pings(lab, "trader", "gateway")
            assert journal_size(host) == 0  # undone, not released as "gone"
        finally:
            spare.send_signal(signal.SIGTERM)
            assert spare.wait(timeout=60) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    with AgentClient(lab.state.hosts["trader"].agent) as again:
        assert again.list() == []


def test_cleanup_from_the_host_namespace_undoes_a_lab_namespaces_records(lab, agents):
    """`faultline-agent cleanup` runs in no namespace of the lab; the records name theirs."""
    host = lab.state.hosts["broker"]
    agents["broker"].apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"],
                                      lease_s=300))
    with agent_stopped_by(lab, "broker", signal.SIGKILL):
        assert not pings(lab, "broker", "gateway")
        out = subprocess.run(agent("cleanup", "--state-dir", host.state_dir), capture_output=True, text=True,
                             timeout=120, check=False)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stdout + out.stderr
        state = tc_state(host.netns, host.interface)
        assert state["egress"] == [] and state["ingress"] == [], state
        assert pings(lab, "broker", "gateway")
        assert os.path.getsize(Path(host.state_dir) / "journal.jsonl") == 0
