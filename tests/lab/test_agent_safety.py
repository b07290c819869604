"""Issue 19 on the real kernel: a failed restart, a vanished interface, a torn journal and a
second agent on one state dir never leave a fault behind or wedge the agent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Disconnect, fault_spec, process_spec
from faultline.controller.env.lab import agent_alive
from testkit.netns import in_ns, proc_state, tc_state, wait_until
from tests.lab.test_component_faults import start_in
from tests.lab.test_nothing_left_behind import agent_stopped_by, journal_size, pings

HEAL_FAILED = 5  # FAULT_STATE_HEAL_FAILED


def health_cli(host) -> subprocess.CompletedProcess[str]:
    """`faultline health` as a monitoring check runs it (exit 0 SERVING, 1 DEGRADED, 2 unreachable)."""
    return subprocess.run([str(Path(sys.executable).parent / "faultline"), "health", "--agent", host.agent],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_failed_restart_plus_kill_9_never_wedges_and_the_disconnect_is_undone(lab, agents, tmp_path):
    """Finding 3: the restart command cannot run; the kill is HEAL_FAILED (retried), the agent
    dies with -9, starts again anyway, undoes the DISCONNECT and names the undo that failed.
    Once the command exists, the next try runs it and the journal empties."""
    host = lab.state.hosts["broker"]
    before = tc_state(host.netns, host.interface)
    script = Path(host.state_dir).parent / "later.sh"  # not there yet: the operator's mistake
    script.unlink(missing_ok=True)
    victim = start_in(lab, "broker", "/bin/sleep", "1010")
    lab.set_restart_commands("broker", {"later": [str(script)]})
    try:
        c = agents["broker"]
        c.apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"], lease_s=300))
        c.apply(process_spec("kill", 0.3, pid=victim.pid, restart="later"))
        assert victim.wait(timeout=5) == -signal.SIGKILL
        failed = wait_until(lambda: [f for f in c.list() if f.state == HEAL_FAILED], 10, "the kill listed HEAL_FAILED")
        assert str(script) in failed[0].heal_error and c.health().heal_failed == 1
        degraded = health_cli(host)
        assert degraded.returncode == 1 and degraded.stdout.startswith("DEGRADED"), degraded.stdout
        assert f"1 fault(s) HEAL_FAILED, being retried: {failed[0].fault_id}" in degraded.stdout
        assert not pings(lab, "broker", "gateway")
        with agent_stopped_by(lab, "broker", signal.SIGKILL):
            assert not pings(lab, "broker", "gateway")  # only the journal can undo it now
        with AgentClient(lab.state.hosts["broker"].agent) as again:
            h = again.health()
            assert h.status == "DEGRADED"  # serving, but an undo from the earlier run is pending
            assert any(str(script) in line for line in h.pending_undos), h.pending_undos
            assert any(r.startswith("undo pending from an earlier run: ") and str(script) in r for r in h.reasons)
            pending = health_cli(host)
            assert pending.returncode == 1 and "undo pending from an earlier run" in pending.stdout
            assert pings(lab, "broker", "gateway")  # the other undo ran all the same
            assert tc_state(host.netns, host.interface) == before
            assert journal_size(host) > 0  # the failed one is kept for the next try
            script.write_text("#!/bin/sh\nexit 0\n")
            script.chmod(0o755)
        with agent_stopped_by(lab, "broker", signal.SIGTERM):
            out = subprocess.run([str(Path(sys.executable).parent / "faultline-agent"), "cleanup",
                                  "--state-dir", host.state_dir], capture_output=True, text=True, check=False)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "restarted later" in out.stdout
            assert journal_size(host) == 0
    finally:
        lab.set_restart_commands("broker", {})
        agents["broker"] = AgentClient(lab.state.hosts["broker"].agent)
        if victim.poll() is None:
            victim.kill()


def test_a_vanished_interface_leaves_list_heal_all_and_sigterm_working(lab):
    """Finding 4: DISCONNECT on a host, then its interface is deleted under it (and a new one
    with the same name and address takes its place, so the agent can be asked)."""
    lab.up(["spare"])
    spare = lab.load().hosts["spare"]
    before = tc_state(spare.netns, spare.interface)
    with AgentClient(spare.agent) as c:
        c.apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["trader"].ipv4 + "/32"], lease_s=300))
        assert tc_state(spare.netns, spare.interface) != before
        lab.replug("spare")
        trader = lab.state.hosts["trader"]
        wait_until(lambda: subprocess.run(in_ns(trader.netns, "ping", "-c1", "-W1", spare.ipv4),
                                          capture_output=True, check=False).returncode == 0,
                   10, "the new link carrying the trader's traffic (the fault went with the old device)")
        assert len(c.list()) == 1
        healed = c.heal_all()
        assert [x.state for x in healed] == [2], healed  # HEALED: the filter went with the device
        assert c.list() == [] and c.health().heal_failed == 0
    assert journal_size(spare) == 0
    os.kill(spare.pid, signal.SIGTERM)
    wait_until(lambda: not agent_alive(spare), 30, "the spare agent to exit on SIGTERM")
    log = Path(spare.log).read_text()
    assert "Traceback" not in log and "journal empty: True" in log, log[-2000:]


def test_torn_journal_tail_then_a_new_record_then_kill_9_is_undone(lab, agents):
    """Must show 3: a crash tore the journal's last line; the restarted agent cuts it, so the
    record it appends next is read back after another kill -9, and its change undone."""
    host = lab.state.hosts["trader"]
    before = tc_state(host.netns, host.interface)
    with agent_stopped_by(lab, "trader", signal.SIGKILL):
        with open(Path(host.state_dir) / "journal.jsonl", "a") as f:
            f.write('{"seq": 77, "at_ns": 1, "fault_id": "f-torn", "chan')
    with AgentClient(lab.state.hosts["trader"].agent) as c:
        c.apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["gateway"].ipv4 + "/32"], lease_s=300))
    assert not pings(lab, "trader", "gateway")
    with agent_stopped_by(lab, "trader", signal.SIGKILL):
        assert not pings(lab, "trader", "gateway")
    assert pings(lab, "trader", "gateway")
    assert tc_state(host.netns, host.interface) == before and journal_size(host) == 0
    agents["trader"] = AgentClient(lab.state.hosts["trader"].agent)


def test_a_second_agent_or_cleanup_on_the_same_state_dir_refuses_and_the_first_keeps_its_faults(lab, agents):
    host = lab.state.hosts["gateway"]
    r = agents["gateway"].apply(fault_spec(Disconnect(), "lab0", peers=[lab.state.hosts["trader"].ipv4 + "/32"],
                                           lease_s=300))
    bin_dir = Path(sys.executable).parent
    second = subprocess.run([str(bin_dir / "faultline-agent"), "serve", "--netns", host.netns, "--insecure",
                             "--listen", "127.0.0.1:7071", "--state-dir", host.state_dir],
                            capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 2 and f"in use by pid {host.pid} (faultline-agent serve)" in second.stderr
    cleanup = subprocess.run([str(bin_dir / "faultline-agent"), "cleanup", "--state-dir", host.state_dir],
                             capture_output=True, text=True, timeout=120, check=False)
    assert cleanup.returncode == 1 and f"in use by pid {host.pid}" in cleanup.stderr
    assert [f.fault_id for f in agents["gateway"].list()] == [r.fault_id]
    assert not pings(lab, "gateway", "trader")


def test_cleanup_where_the_journalled_namespace_is_gone_releases_it_without_a_traceback(tmp_path):
    """Issue 32 item 7: the namespace an agent ran in was deleted after it died. Its filters went
    with it: `cleanup` releases those records saying so (it printed a 25-line traceback and kept
    them), and still resumes a process it had paused."""
    from faultline.agent.domain.journal import Journal

    state = tmp_path / "state"
    j = Journal(state)
    j.record("f-1", {"op": "add_filter", "netns": "flc-long-gone", "ifname": "lab0", "direction": "egress"},
             {"op": "del_filter", "netns": "flc-long-gone", "ifname": "lab0", "direction": "egress", "prio": 49,
              "handle": 0xFA17})
    victim = subprocess.Popen(["/bin/sleep", "3141"])
    try:
        os.kill(victim.pid, signal.SIGSTOP)
        start = int(Path(f"/proc/{victim.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        j.record("f-2", {"op": "sigstop", "netns": "flc-long-gone", "pid": victim.pid},
                 {"op": "sigcont", "pid": victim.pid, "start": start})
        out = subprocess.run([str(Path(sys.executable).parent / "faultline-agent"), "cleanup", "--state-dir",
                              str(state)], capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "namespace flc-long-gone gone: nothing left there" in out.stdout
        assert "Traceback" not in out.stderr and Journal(state).is_empty()
        wait_until(lambda: proc_state(victim.pid) != "T", 5, "the paused process resumed")
    finally:
        victim.kill()
        victim.wait()
