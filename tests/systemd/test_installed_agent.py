"""The agent as a host runs it: `make install` under a real systemd (PID 1), in the VM stage.

Runs only inside `faultline vm --systemd` (make test-vm boots one for it): `make install`
writes /opt, /etc and /etc/systemd/system, which there are throwaway overlays. Everywhere else
it skips with the reason. The faulted interface is a veth the test makes inside that VM.
Figures (boot, install, start, systemd-analyze security) go to $FAULTLINE_VM_OUT/systemd.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.agents.spec import Delay, fault_spec, process_spec
from testkit.netns import tc_state, wait_until, without_agent

REPO = Path(__file__).resolve().parents[2]
UNIT = "faultline-agent.service"
AGENT = "localhost:7070"
# The controller's side: one CA for the fleet, this host's certificate issued under it and
# installed with TLS_FROM, as docs/hosts.md says (made by the `installed` fixture).
TLS = Path(os.environ.get("FAULTLINE_VM_OUT", "/nonexistent")) / "controller-ca"
POLICY = Path("/etc/faultline/agent.yaml")
JOURNAL = Path("/var/lib/faultline")
DEV, PEER_NS, PEER_DEV = "flsd0", "flsd", "flsd1"
ADDR, PEER = "10.99.0.1", "10.99.0.2"
VICTIM = ["/bin/sleep", "3141"]        # what the restart command runs: a cmdline nothing else has


def _why_not_here() -> str | None:
    if not os.environ.get("FAULTLINE_VM_OUT"):
        return (
            "runs only inside the VM stage (faultline vm --systemd; make test-vm): make install changes /opt and /etc")
    if Path("/proc/1/comm").read_text().strip() != "systemd":
        return "needs systemd as PID 1 (faultline vm --systemd)"
    mounts = Path("/proc/mounts").read_text().split("\n")
    overlaid = {line.split()[1] for line in mounts if line.startswith(("overlay", "virtme_rw_overlay"))}
    if not {"/etc", "/opt"} <= overlaid:
        return "/etc and /opt are not throwaway overlays here: make install would change this system for good"
    return None


WHY_NOT_HERE = _why_not_here()
pytestmark = pytest.mark.skipif(WHY_NOT_HERE is not None, reason=WHY_NOT_HERE or "")
FIGURES: dict[str, object] = {}


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def client() -> AgentClient:
    return AgentClient(AGENT, timeout_s=10, tls_dir=TLS)


def main_pid() -> int:
    return int(sh("systemctl", "show", "-p", "MainPID", "--value", UNIT).stdout.strip() or 0)


def serving() -> bool:
    try:
        with client() as c:
            return c.health(timeout_s=3).status == "SERVING"
    except AgentError:
        return False


def ready() -> bool:
    """Serving, and its BPF programs compiled (a peer-scoped fault needs the classifier)."""
    try:
        with client() as c:
            return any(f.name == "ebpf_tc_program" and f.available for f in c.capabilities().features)
    except AgentError:
        return False


def rtt_ms() -> float:
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", PEER, check=False).stdout
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("inf")


def write_policy(**changes: object) -> None:
    policy = yaml.safe_load(POLICY.read_text())
    policy.update(changes)
    POLICY.write_text(yaml.safe_dump(policy))
    digest = hashlib.sha256(POLICY.read_bytes()).hexdigest()[:16]
    sh("systemctl", "reload", UNIT)

    def reloaded() -> bool:
        with client() as c:
            return any(digest in f.reason for f in c.capabilities().features)
    wait_until(reloaded, 30, f"the agent to reload its policy (sha256 {digest})", every_s=0.2)


@pytest.fixture(scope="module")
def installed():
    """make install, as an operator would; the unit must come up serving on mTLS."""
    boot = sh("systemd-analyze", "time", check=False).stdout
    m = re.search(r"multi-user\.target reached after ([\dmin. s]+)", boot)
    FIGURES["boot_to_multi_user"] = m.group(1).strip() if m else boot.strip()[-200:]
    sh("systemctl", "is-system-running", "--wait", check=False, timeout=300)
    t0 = time.monotonic()
    # The VM has no network: install as on a host without internet, from a wheelhouse
    # (make test-vm downloads it into the out dir before the boot).
    wheels = Path(os.environ["FAULTLINE_VM_OUT"]) / "wheels"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels)) if wheels.is_dir() else dict(os.environ)
    faultline = str(Path(sys.executable).parent / "faultline")
    issued = TLS.parent / "issued-localhost"
    for d in (TLS, issued):
        shutil.rmtree(d, ignore_errors=True)  # an earlier run's, in the same out dir
    sh(faultline, "certs", "init", str(TLS))  # CN=faultline-controller: the shipped policy's allowed client
    sh(faultline, "certs", "issue-agent", str(TLS), "localhost", "--ip", "127.0.0.1", "--out", str(issued))
    r = subprocess.run(["make", "-C", str(REPO), "install", f"TLS_FROM={issued}"], capture_output=True, text=True,
                       timeout=900, check=False, env=env)
    FIGURES["make_install_s"] = round(time.monotonic() - t0, 1)
    assert r.returncode == 0, f"make install failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    t1 = time.monotonic()
    wait_until(serving, 180, "the installed agent to serve on mTLS", every_s=0.5)
    FIGURES["install_to_serving_s"] = round(time.monotonic() - t1, 1)
    sh("ip", "netns", "add", PEER_NS)
    sh("ip", "link", "add", DEV, "type", "veth", "peer", "name", PEER_DEV, "netns", PEER_NS)
    sh("ip", "addr", "add", f"{ADDR}/24", "dev", DEV)
    sh("ip", "link", "set", DEV, "up")
    sh("ip", "-n", PEER_NS, "addr", "add", f"{PEER}/24", "dev", PEER_DEV)
    sh("ip", "-n", PEER_NS, "link", "set", PEER_DEV, "up")
    sh("ip", "-n", PEER_NS, "link", "set", "lo", "up")
    wait_until(ready, 300, "the agent's BPF programs to compile", every_s=1)
    wait_until(lambda: rtt_ms() < 100, 30, f"{PEER} to answer ping")
    yield
    sh("ip", "netns", "del", PEER_NS, check=False)  # the veth goes with it
    out = Path(os.environ["FAULTLINE_VM_OUT"])
    (out / "systemd.json").write_text(json.dumps(FIGURES, indent=2))


def test_unit_runs_the_agent_with_mtls_and_the_shipped_policy(installed) -> None:
    pid = main_pid()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--tls-dir" in argv and b"--insecure" not in argv, argv
    with client() as c:
        reasons = " ".join(f.reason for f in c.capabilities().features)
    assert str(POLICY) in reasons, reasons
    # Without the controller's certificate there is nothing to be had.
    with pytest.raises(AgentError) as e:
        with AgentClient("127.0.0.1:7070", timeout_s=3, tls_dir=None) as plain:
            plain.health(timeout_s=3)
    assert e.value.code.name == "UNAVAILABLE" and "requires mTLS but no TLS directory is set" in e.value.message
    # `faultline health` as a monitoring check: exit 0, SERVING, the certificate's days left.
    r = subprocess.run([str(Path(sys.executable).parent / "faultline"), "health", "--agent", AGENT],
                       capture_output=True, text=True, timeout=60, check=False,
                       env=dict(os.environ, FAULTLINE_TLS_DIR=str(TLS)))
    assert r.returncode == 0 and r.stdout.startswith("SERVING") and "days left" in r.stdout, r.stdout + r.stderr
    # The shipped policy lists no interface: a fault is refused before the kernel is touched.
    with pytest.raises(AgentError) as e, client() as c:
        c.apply(fault_spec(Delay(delay_ms=100), DEV, peers=[f"{PEER}/32"], lease_s=5))
    assert e.value.code.name == "PERMISSION_DENIED" and "interfaces" in e.value.message
    cap_eff = int(re.search(r"CapEff:\s*([0-9a-f]+)", Path(f"/proc/{pid}/status").read_text()).group(1), 16)
    FIGURES["agent_capabilities_hex"] = f"{cap_eff:x}"
    assert cap_eff & (1 << 12), "CAP_NET_ADMIN"
    assert not cap_eff & (1 << 16), "CAP_SYS_MODULE must not be there"


def test_systemctl_reload_rotates_the_certificate(installed) -> None:
    """A certificate naming other addresses, installed with TLS_FROM's layout and `systemctl reload`:
    new connections get it (localhost no longer matches), then the original is put back."""
    etc_tls = Path("/etc/faultline/tls")
    saved = {n: (etc_tls / n).read_bytes() for n in ("agent.pem", "agent-key.pem")}
    rotated = TLS.parent / "rotated"
    shutil.rmtree(rotated, ignore_errors=True)
    sh(str(Path(sys.executable).parent / "faultline"), "certs", "issue-agent", str(TLS), "rotated", "--ip",
       "127.0.0.1", "--out", str(rotated))
    try:
        for n in saved:
            shutil.copy(rotated / n, etc_tls / n)
        sh("systemctl", "reload", UNIT)

        def localhost_refused() -> bool:
            try:
                with client() as c:
                    c.health(timeout_s=3)
                return False
            except AgentError as e:
                return "does not name localhost" in e.message
        wait_until(localhost_refused, 30, "the reloaded certificate (no longer naming localhost)", every_s=0.3)
        with AgentClient("127.0.0.1:7070", timeout_s=10, tls_dir=TLS) as c:
            assert c.health().status == "SERVING"
    finally:
        for n, data in saved.items():
            (etc_tls / n).write_bytes(data)
        sh("systemctl", "reload", UNIT)
        wait_until(serving, 30, "the original certificate back", every_s=0.3)


def test_fault_applied_and_healed(installed) -> None:
    write_policy(interfaces=[DEV], peer_cidrs=["10.99.0.0/24"])
    before = tc_state("", DEV)
    base = rtt_ms()
    with client() as c:
        fault_id = c.apply(fault_spec(Delay(delay_ms=150), DEV, peers=[f"{PEER}/32"], lease_s=60)).fault_id
        assert rtt_ms() >= base + 140, "the delay is not in the kernel"
        assert "netem" in json.dumps(tc_state("", DEV)["qdisc"])
        c.heal(fault_id)
    assert tc_state("", DEV) == before
    assert rtt_ms() < base + 50


def test_restart_unit_restarts_a_real_unit(installed) -> None:
    unit = "redis-server.service"
    # This machine's image has no /var/log/redis (the trading lab runs its own redis).
    sh("install", "-d", "-o", "redis", "-g", "redis", "/var/log/redis", "/var/lib/redis")
    sh("systemctl", "reset-failed", unit, check=False)
    sh("systemctl", "start", unit, check=False, timeout=60)
    if sh("systemctl", "is-active", unit, check=False).stdout.strip() != "active":
        journal = sh("journalctl", "-u", unit, "-n", "20", "--no-pager", check=False).stdout
        pytest.fail(f"{unit} does not run in this VM:\n{journal}")
    write_policy(allow_process_faults=True, units=[unit])
    before = main_pid_of(unit)
    with client() as c:
        c.apply(process_spec("restart-unit", 1, unit=unit))
    wait_until(lambda: main_pid_of(unit) not in (0, before), 60, f"{unit} to come back with a new pid")
    FIGURES["restart_unit"] = {"unit": unit, "pid_before": before, "pid_after": main_pid_of(unit)}


def main_pid_of(unit: str) -> int:
    return int(sh("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip() or 0)


def victims() -> list[int]:
    r = sh("pgrep", "-f", "-x", " ".join(VICTIM), check=False)
    return [int(p) for p in r.stdout.split()]


def test_restarted_command_survives_an_agent_restart(installed) -> None:
    write_policy(allow_process_faults=True, restart_commands={"victim": {"argv": VICTIM, "user": "nobody"}})
    # As nobody: a sandboxed agent cannot see into a process holding capabilities it lacks.
    first = subprocess.Popen(VICTIM, start_new_session=True, user="nobody")
    try:
        with client() as c:
            c.apply(process_spec("kill", 1, restart="victim", cmdline=" ".join(VICTIM)))
        first.wait(timeout=30)
        wait_until(victims, 60, "the policy's restart command to run when the kill healed", every_s=0.2)
        [pid] = victims()
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        assert UNIT not in cgroup, f"the restarted command runs in the agent's cgroup: {cgroup}"
        assert Path(f"/proc/{pid}/status").read_text().count("\t65534") >= 2, "not run as nobody"
        agent_before = main_pid()
        sh("systemctl", "restart", UNIT, timeout=60)
        wait_until(lambda: main_pid() not in (0, agent_before) and serving(), 120, "the agent to restart")
        assert victims() == [pid], "the restarted command did not survive systemctl restart faultline-agent"
        FIGURES["restarted_command_cgroup"] = cgroup.strip()
    finally:
        for p in victims():
            os.kill(p, signal.SIGKILL)
        if first.poll() is None:
            first.kill()


@pytest.mark.parametrize("how", ["stop", "kill -9, then stop"])
def test_systemctl_stop_leaves_tc_as_before(installed, how: str) -> None:
    sh("systemctl", "start", UNIT)  # the case before stopped it; reload needs it running
    wait_until(ready, 300, "the agent to serve with its programs compiled", every_s=1)
    write_policy(interfaces=[DEV], peer_cidrs=["10.99.0.0/24"])
    before = tc_state("", DEV)
    with client() as c:
        c.apply(fault_spec(Delay(delay_ms=120), DEV, peers=[f"{PEER}/32"], lease_s=300))
    assert tc_state("", DEV) != before
    if how.startswith("kill"):
        # SIGKILL: no heal in the agent; ExecStopPost's cleanup undoes the journal.
        sh("systemctl", "kill", "--signal=SIGKILL", UNIT)
        # Restart=on-failure may already have brought the agent back with its (empty) clsact.
        wait_until(lambda: without_agent(tc_state("", DEV)) == without_agent(before), 60,
                   "ExecStopPost cleanup to undo the delay")
    sh("systemctl", "stop", UNIT, timeout=60)
    assert tc_state("", DEV) == without_agent(before)  # a stopped agent keeps no clsact either
    # Nothing left for a later cleanup either (it exits 1 naming anything it could not undo).
    sh("/opt/faultline/.venv/bin/faultline-agent", "cleanup", "--state-dir", str(JOURNAL))
    sh("systemctl", "start", UNIT)
    wait_until(serving, 120, "the agent to serve again")


def test_systemd_analyze_security_score(installed) -> None:
    out = sh("systemd-analyze", "security", UNIT, "--no-pager", check=False).stdout
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
    assert m, out[-1500:]
    FIGURES["systemd_analyze_security"] = f"{m.group(1)} {m.group(2)}"
    assert float(m.group(1)) < 7.0, f"exposure {m.group(1)} {m.group(2)}: the unit's sandboxing regressed"
