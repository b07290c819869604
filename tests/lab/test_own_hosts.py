"""On hosts of one's own, first try (issue 31 must-shows 1 and 3): two namespaces that are not the
lab, each agent with its own certificate from `certs issue-agent` under one CA and the shipped
unit's flags; one controller certificate reaches both; Health tells the truth."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from faultline.controller.agents.client import AgentUnreachable
from faultline.controller.env import certs
from testkit.hosts import BIN, OwnHosts, Sshd
from testkit.netns import wait_until, why_no_lab


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    if why := why_no_lab():
        pytest.skip(why)
    hosts = OwnHosts(tmp_path_factory.mktemp("own-hosts")).up()
    yield hosts
    hosts.down()


def health_cli(own: OwnHosts, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {"FAULTLINE_TLS_DIR": str(own.ca), "PATH": "/usr/bin"}
    return subprocess.run([str(BIN / "faultline"), "health", "--agent", own[name].ip, *extra], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


def test_one_controller_certificate_reaches_both_hosts_over_mtls(own):
    for name in ("app1", "db1"):
        r = health_cli(own, name)  # the address without a port: 7070
        assert r.returncode == 0 and r.stdout.startswith("SERVING"), r.stdout + r.stderr
        assert "days left" in r.stdout
        with own.client(name) as c:
            caps = c.capabilities()
            # Under `ip netns exec` (tracefs gone) the agent mounted it in its own mount namespace.
            assert all(f.available for f in caps.features if f.name.startswith("tracepoint:tcp:tcp_retransmit")), \
                [(f.name, f.reason) for f in caps.features]
            assert c.watch(ready_timeout_s=30).watching.local_addrs
    # The host's own view of /sys is untouched: tracefs there is the one setup mounted, no more.
    assert open("/proc/1/mountinfo").read().count(" - tracefs ") <= 1


def test_an_agent_serving_another_hosts_certificate_is_refused_by_name(own, tmp_path):
    app = own["app1"]
    saved = tmp_path / "saved"
    shutil.copytree(app.tls, saved)
    try:
        for f in ("agent.pem", "agent-key.pem"):
            shutil.copy(own["db1"].tls / f, app.tls / f)
        app.proc.send_signal(signal.SIGHUP)  # rotation without a restart: the agent reloads its files

        def refused() -> str:
            try:
                with own.client("app1", timeout_s=3) as c:
                    c.health(timeout_s=3)
                return ""
            except AgentUnreachable as e:
                return e.message
        why = wait_until(refused, 20, "app1's agent serving db1's certificate")
        assert f"does not name {app.ip} (it names db1, {own['db1'].ip})" in why, why
    finally:
        for f in ("agent.pem", "agent-key.pem"):
            shutil.copy(saved / f, app.tls / f)
        app.proc.send_signal(signal.SIGHUP)
        own.wait_serving("app1")


def test_health_is_degraded_with_the_reason_for_an_agent_without_tracefs(own):
    """tracefs hidden and unmountable (a read-only, empty /sys/kernel): DEGRADED, exit 1, the reason."""
    own.stop_agent("db1")
    hide = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o ro tmpfs /sys/kernel && exec "$0" "$@"']
    try:
        own.start_agent("db1", wrap=hide)
        own.wait_serving("db1")
        r = health_cli(own, "db1")
        assert r.returncode == 1 and r.stdout.startswith("DEGRADED"), r.stdout + r.stderr
        assert "  - TCP observation: tracefs is not mounted" in r.stdout, r.stdout
        d = json.loads(health_cli(own, "db1", "--json").stdout)
        assert d["status"] == "DEGRADED" and any("tracefs" in x for x in d["reasons"])
    finally:
        own.stop_agent("db1")
        own.start_agent("db1")
        own.wait_serving("db1")
    assert health_cli(own, "db1").returncode == 0


def test_health_exits_2_for_an_unreachable_agent(own):
    r = subprocess.run([str(BIN / "faultline"), "health", "--agent", f"{own['app1'].ip}:7071", "--timeout", "3s"],
                       capture_output=True, text=True, timeout=60, check=False,
                       env={"FAULTLINE_TLS_DIR": str(own.ca), "PATH": "/usr/bin"})
    assert r.returncode == 2 and "cannot connect" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_certs_list_shows_both_hosts(own):
    names = {i.subject: i.names for i in certs.list_issued(own.ca)}
    assert names["O=faultline,CN=app1"] == ("app1", own["app1"].ip)
    assert names["O=faultline,CN=db1"] == ("db1", own["db1"].ip)


def hosts_file(own: OwnHosts, path):
    path.write_text("hosts:\n" + "".join(f"  {h.name}: {{agent: {h.ip}, ipv4: {h.ip}, interface: {h.interface}}}\n"
                                         for h in own.hosts.values()))
    return path


def test_sigterm_to_pytest_heals_every_fault_within_a_second(own, tmp_path):
    """Must-show 5: pytest --faultline-hosts --faultline-tls-dir, SIGTERM (a cancelled CI job) during
    inject_disconnect(duration_s=60): no fault left on any agent within 1 s (ListFaults)."""
    test = tmp_path / "test_cancelled.py"
    test.write_text("import time\n\n"
                    "def test_it(network_fault_injector):\n"
                    "    with network_fault_injector.inject_disconnect(duration_s=60, target='db1'):\n"
                    "        time.sleep(120)\n")
    proc = subprocess.Popen([str(BIN / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test),
                             f"--faultline-hosts={hosts_file(own, tmp_path / 'hosts.yaml')}",
                             f"--faultline-tls-dir={own.ca}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    clients = {n: own.client(n) for n in own.hosts}
    try:
        wait_until(lambda: clients["app1"].list(), 60, "the disconnect applied on app1")
        [fault] = clients["app1"].list()
        assert list(fault.spec.selector.peer_cidrs) == [f"{own['db1'].ip}/32"] and fault.spec.selector.interface \
            == "eth1"
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        wait_until(lambda: not any(c.list() for c in clients.values()), 1.0, "every fault healed after SIGTERM")
        healed_s = time.monotonic() - t0
        out, _ = proc.communicate(timeout=30)
        assert "KeyboardInterrupt" in out or "Terminated" in out, out
        assert healed_s < 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in clients.values():
            c.heal_all()
            c.close()


SCENARIO = """\
title: App to database partition on our own hosts, over ssh
hosts:
  app1: {{agent: {app_ip}, ipv4: {app_ip}, interface: eth1, ssh: "{app_ssh}"}}
  db1: {{agent: {db_ip}, ipv4: {db_ip}, interface: eth1, ssh: "{db_ssh}"}}
targets: {{rto_s: 30, max_data_loss_ratio: 0}}
processes:
  - name: db
    host: db1
    command: ["{{python}}", -m, faultline.examples.workloads.seqload, server, --bind, "{{db1}}", --port, 5432,
              --stats, "{marker}/db.json"]
    ready: db-port
  - name: app
    host: app1
    command: ["{{python}}", -m, faultline.examples.workloads.seqload, client, --connect, "{{db1}}", --port, 5432,
              --stats, "{marker}/app.json", --base-delay, 0.25, --max-delay, 1, --connect-timeout, 0.3,
              --request-timeout, 0.5]
    ready: app-flow
probes:
  - {{name: db-port, tcp: {{host: "{{db1}}", port: 5432}}, from: app1, timeout_s: 1}}
  - {{name: app-flow, established: {{host: app1, port: 5432}}}}
  - name: rows
    command: ["{{python}}", -m, faultline.examples.workloads.seqload, stats, --client, "{marker}/app.json",
              --server, "{marker}/db.json"]
    host: controller
    counters: true
steady_state: [db-port, app-flow]
method:
  - partition: {{a: [app1], b: [db1], duration_s: {partition_s}}}
    at_s: 1
recovery: {{watch: {{host: app1, port: 5432}}, probe: db-port, poll_s: 0.1}}
data_loss: rows
"""


@pytest.fixture(scope="module")
def sshd(own):
    if shutil.which("sshd") is None:
        pytest.skip("needs OpenSSH's sshd (openssh-server; scripts/setup.sh --with-vm installs it)")
    s = Sshd(own).up()
    yield s
    s.down()


def scenario_file(own, sshd, tmp_path, partition_s: float):
    marker = tmp_path / "w"
    marker.mkdir()
    path = tmp_path / "app_db.yaml"
    path.write_text(SCENARIO.format(app_ip=own["app1"].ip, db_ip=own["db1"].ip, app_ssh=sshd.target("app1"),
                                    db_ssh=sshd.target("db1"), marker=marker, partition_s=partition_s))
    return path, str(marker)


def workload_pids(marker: str) -> list[int]:
    """The scenario's processes on the hosts (this machine's processes whose command line has the marker)."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if d.name.isdigit() and marker in cmd and "seqload" in cmd and "ssh" not in cmd.split()[0]:
            pids.append(int(d.name))
    return pids


def run_cli(own, sshd, path, out, **kw):
    return subprocess.Popen([str(BIN / "faultline"), "run", str(path), "--out", str(out), "--tls-dir", str(own.ca),
                             "--ssh-config", str(sshd.client_config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_a_scenario_on_own_hosts_runs_its_workload_over_ssh_and_probes_from_a_host(own, sshd, tmp_path):
    """Must-show 4: the database on db1 and its client on app1, both started over ssh; the port probe
    taken on app1 (where the client is), not on the controller; the run passes and leaves nothing."""
    path, marker = scenario_file(own, sshd, tmp_path, 2)
    proc = run_cli(own, sshd, path, tmp_path / "out")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "process db started on db1 over ssh" in out and "from app1: connected to" in out, out
    assert "SCENARIO COMPLETED" in out and "network detection (kernel)" in out
    [run_dir] = [d for d in (tmp_path / "out").iterdir() if d.is_dir()]
    assert '"event": "connected"' in (run_dir / "app.log").read_text()  # its output came back over ssh
    journal = json.loads((run_dir / "journal.json").read_text())
    starts = [a for a in journal["activities"] if a["kind"] == "process" and a.get("action") == "start"]
    assert sorted((a["name"], a["host"], a["over"]) for a in starts) == [("app", "app1", "ssh"), ("db", "db1", "ssh")]
    assert workload_pids(marker) == []  # stopped at the end, on the hosts
    for name in own.hosts:
        with own.client(name) as c:
            assert c.list() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "sigkill"])
def test_the_workload_never_outlives_the_controller(own, sshd, tmp_path, sig):
    """Its processes are gone from the hosts after Ctrl-C, SIGTERM and SIGKILL of the controller
    (for SIGKILL: its ssh sessions' stdin closes with it, and the remote guard stops them)."""
    path, marker = scenario_file(own, sshd, tmp_path, 60)
    proc = run_cli(own, sshd, path, tmp_path / "out")
    try:
        wait_until(lambda: len(workload_pids(marker)) == 2, 60, "the scenario's two processes on the hosts")
        with own.client("app1") as c:
            wait_until(c.list, 60, "the partition applied")
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        wait_until(lambda: workload_pids(marker) == [], 20, f"no process left on the hosts after {sig.name}")
    finally:
        if proc.poll() is None:
            proc.kill()
        for name in own.hosts:
            with own.client(name) as c:
                c.heal_all()  # after SIGKILL the lease would (the agents' dead-man), later


def test_a_full_state_dir_refuses_a_fault_whole_and_the_next_one_works(own, tmp_path):
    """Issue 32 item 2 on the real kernel: db1's state dir a tiny tmpfs, filled. A DISCONNECT (both
    directions: a filter each) is RESOURCE_EXHAUSTED naming the dir, the kernel unchanged; with room
    again the same fault applies and drops (it matched 0 and dropped nothing before: stale state)."""
    from faultline.controller.agents.client import AgentError
    from faultline.controller.agents.spec import Disconnect, fault_spec
    from testkit.netns import tc_state

    db = own["db1"]
    own.stop_agent("db1")
    shutil.rmtree(db.state_dir, ignore_errors=True)
    db.state_dir.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(db.state_dir)], check=True)
    ballast = db.state_dir / "ballast"
    try:
        own.start_agent("db1")
        own.wait_serving("db1")
        before = tc_state(db.netns, db.interface)
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)  # what a never-rotated log does to a state dir
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        # The journal is empty (no fault): its first record needs a page the full tmpfs has not got.
        spec = fault_spec(Disconnect(), db.interface, peers=[f"{own['app1'].ip}/32"], lease_s=30)
        with own.client("db1") as c:
            with pytest.raises(AgentError) as e:
                c.apply(spec)
            assert e.value.code.name == "RESOURCE_EXHAUSTED", e.value
            assert f"the state dir {db.state_dir} cannot take the journal record" in e.value.message
            assert tc_state(db.netns, db.interface) == before and c.list() == []
            ballast.unlink()
            f = c.apply(spec)
            ping = subprocess.run(["ip", "netns", "exec", own["app1"].netns, "ping", "-c", "3", "-i", "0.2", "-W", "1",
                                   db.ip], capture_output=True, text=True, check=False)
            [listed] = c.list()
            assert ping.returncode != 0 and listed.counters.dropped >= 3, (ping.stdout, listed.counters)
            c.heal(f.fault_id)
            assert tc_state(db.netns, db.interface) == before
    finally:
        own.stop_agent("db1")
        subprocess.run(["umount", str(db.state_dir)], check=False)
        own.start_agent("db1")
        own.wait_serving("db1")
