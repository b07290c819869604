"""On hosts of one's own, first try (issue 31 must-shows 1 and 3): two namespaces that are not the
lab, each agent with its own certificate from `certs issue-agent` under one CA and the shipped
unit's flags; one controller certificate reaches both; Health tells the truth."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pytest

from faultline.controller.agents.client import AgentUnreachable
from faultline.controller.env import certs
from testkit.hosts import BIN, OwnHosts
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
