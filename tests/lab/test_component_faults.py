"""PROCESS and RESET faults on lab hosts: real signals, real sockets destroyed, nothing left behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time

import grpc
import pytest

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.agents.spec import Reset, fault_spec, process_spec
from testkit.netns import (
    in_netns,
    in_ns,
    listener,
    pids_running,
    proc_state,
    socket_in,
    started_in,
    tc_state,
    wait_until,
)
from tests.lab.test_nothing_left_behind import agent_stopped_by, journal_size


def wait_state(pid: int, want: str, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while (got := proc_state(pid)) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


def start_in(lab, host: str, *argv: str) -> subprocess.Popen:
    """argv started in the host's namespace; back once it is there and asleep (not on a fixed sleep)."""
    ns = lab.state.hosts[host].netns
    p = subprocess.Popen(in_ns(ns, *argv))  # `ip netns exec` execs: same pid
    started_in(p.pid, ns, argv)
    return p


@pytest.fixture
def sleeper(lab):
    procs: list[subprocess.Popen] = []

    def start(host: str = "broker", seconds: str = "1000") -> subprocess.Popen:
        procs.append(start_in(lab, host, "/bin/sleep", seconds))
        return procs[-1]
    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_pause_is_a_real_sigstop_resumed_at_heal(lab, agents, sleeper):
    p = sleeper()
    r = agents["broker"].apply(process_spec("pause", 30, pid=p.pid))
    assert wait_state(p.pid, "T") == "T"
    assert journal_size(lab.state.hosts["broker"]) > 0  # the SIGCONT is recorded before the SIGSTOP
    healed = agents["broker"].heal(r.fault_id)
    assert healed.counters.matched == 1
    assert wait_state(p.pid, "S") == "S"
    assert journal_size(lab.state.hosts["broker"]) == 0


def test_pause_by_name_ends_with_its_lease(lab, agents, sleeper):
    p = sleeper(seconds="1001")
    agents["broker"].apply(process_spec("pause", 0.5, cmdline="sleep 1001"))
    assert wait_state(p.pid, "T") == "T"
    assert wait_state(p.pid, "S", timeout_s=5) == "S"


def test_pause_survives_agent_kill_9(lab, agents, sleeper):
    """Must show 3: the agent dies with a process paused; its restart resumes it."""
    p = sleeper()
    agents["broker"].apply(process_spec("pause", 300, pid=p.pid))
    assert wait_state(p.pid, "T") == "T"
    with agent_stopped_by(lab, "broker", signal.SIGKILL):
        assert proc_state(p.pid) == "T"  # the agent is gone and nobody resumed it: only the journal knows
    assert wait_state(p.pid, "S") == "S"
    assert journal_size(lab.state.hosts["broker"]) == 0
    agents["broker"] = AgentClient(lab.state.hosts["broker"].agent)


def test_kill_then_the_policys_restart_command_at_lease_end(lab, agents, sleeper):
    """The request names a restart command; the host's policy says what it runs."""
    p = sleeper(seconds="1002")
    lab.set_restart_commands("broker", {"sleeper": ["/bin/sleep", "1003"]})
    try:
        agents["broker"].apply(process_spec("kill", 0.5, pid=p.pid, restart="sleeper"))
        assert p.wait(timeout=5) == -signal.SIGKILL
        ns = lab.state.hosts["broker"].netns

        def restarted() -> list[int]:
            return [pid for pid in pids_running(["/bin/sleep", "1003"]) if in_netns(pid, ns)]
        found = wait_until(restarted, 10, "the restart command running in the broker's namespace")
        for pid in found:
            os.kill(pid, signal.SIGTERM)
    finally:
        lab.set_restart_commands("broker", {})


def test_a_restart_outside_the_policys_list_is_refused_and_nothing_signalled(lab, agents, sleeper):
    p = sleeper(seconds="1004")
    with pytest.raises(AgentError) as e:
        agents["broker"].apply(process_spec("kill", 5, pid=p.pid, restart="rm-rf"))
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "restart_commands: 'rm-rf' is not one of this host's restart commands" in e.value.message
    assert proc_state(p.pid) == "S" and agents["broker"].list() == []


def test_bad_targets_change_nothing(lab, agents, sleeper):
    """Must show 4: NOT_FOUND / INVALID_ARGUMENT / FAILED_PRECONDITION, nothing signalled or journalled."""
    other = sleeper(host="gateway")  # another host's process: out of the broker agent's reach
    host = lab.state.hosts["broker"]
    before = tc_state(host.netns, host.interface)
    cases = [
        (dict(pid=4_000_000), grpc.StatusCode.NOT_FOUND, "spec.process.target.pid"),
        (dict(pid=other.pid), grpc.StatusCode.NOT_FOUND, "spec.process.target.pid"),
        (dict(name="no-such-proc"), grpc.StatusCode.NOT_FOUND, "spec.process.target.name"),
        (dict(cgroup="no/such/group"), grpc.StatusCode.PERMISSION_DENIED, "cgroups"),
        (dict(cgroup="."), grpc.StatusCode.INVALID_ARGUMENT, "spec.process.target.cgroup"),
        (dict(pid=1), grpc.StatusCode.INVALID_ARGUMENT, "spec.process.target.pid"),
        (dict(name="a/b"), grpc.StatusCode.INVALID_ARGUMENT, "spec.process.target.name"),
        (dict(unit="broker.service"), grpc.StatusCode.PERMISSION_DENIED, "units"),
    ]
    for target, code, named in cases:
        with pytest.raises(AgentError) as e:
            agents["broker"].apply(process_spec("pause", 5, **target))
        assert e.value.code == code, (target, e.value)
        assert named in str(e.value), (target, e.value)
    with pytest.raises(AgentError) as e:
        agents["broker"].apply(process_spec("pause", 5, name="sleep", restart="sleeper"))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "spec.process.restart" in str(e.value)
    assert proc_state(other.pid) == "S"
    assert agents["broker"].list() == []
    assert journal_size(host) == 0
    assert tc_state(host.netns, host.interface) == before


def test_reset_destroys_the_connection_both_ends_see_it(lab, agents):
    gw, tr = lab.state.hosts["gateway"], lab.state.hosts["trader"]
    srv = listener(gw.netns, gw.ipv4, 4102)
    cli = socket_in(tr.netns)
    cli.connect((gw.ipv4, 4102))
    conn, _ = srv.accept()
    cli.sendall(b"ping")
    assert conn.recv(4) == b"ping"

    r = agents["trader"].apply(fault_spec(Reset(), "", peers=[gw.ipv4 + "/32"], ports=[4102], lease_s=1))
    healed = agents["trader"].heal(r.fault_id)
    assert (healed.counters.matched, healed.counters.dropped) == (1, 1)
    with pytest.raises(OSError) as e:
        cli.sendall(b"x")
    assert e.value.errno == errno.ECONNABORTED  # the local end: aborted by the kernel
    conn.settimeout(2)
    with pytest.raises(OSError) as e:
        conn.recv(1)
    assert e.value.errno == errno.ECONNRESET  # the peer: "connection reset by peer"
    for s in (cli, conn, srv):
        s.close()


def test_reset_never_touches_the_agents_own_connection(lab, agents):
    """Resetting every connection on the agent's port leaves the controller's gRPC channel alive."""
    r = agents["trader"].apply(fault_spec(Reset(), "", ports=[7070], lease_s=1))
    assert agents["trader"].health().status == "SERVING"
    assert agents["trader"].heal(r.fault_id).counters.matched == 0


def test_reset_without_a_selector_is_refused(agents):
    with pytest.raises(AgentError) as e:
        agents["trader"].apply(fault_spec(Reset(), "", lease_s=1))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "peer_cidrs and/or ports" in str(e.value)
    with pytest.raises(AgentError) as e:
        agents["trader"].apply(fault_spec(Reset(), "lab0", ports=[1], lease_s=1))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "spec.selector.interface" in str(e.value)
