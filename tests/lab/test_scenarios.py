"""Scenarios on the real kernel (issue 6 must-shows 1, 3 and 5): a partition measured from
kernel events, an RTO violation failing the run, Ctrl-C rolling back."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from faultline.controller.model import scenario
from faultline.controller.run import runner
from testkit.netns import wait_until
from tests.baseline import assert_journal_shape
from tests.lab.conftest import TEST_LAB
from tests.scenarios import CONNECT_TIMEOUT_S, MAX_DELAY_S, partition


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "scenario.yaml"
    f.write_text(text)
    return f


def test_partition_3s_recovers_within_one_reconnect_cycle_without_loss(lab, agents, tmp_path):
    scn = scenario.load(write(tmp_path, partition("trader", "gateway", 3.0)))
    o = runner.run(scn, runner.RunOptions(out_dir=tmp_path / "run", lab_config=TEST_LAB))
    m, j = o.metrics, o.journal
    assert o.passed, [v for v in o.verdicts if not v.ok]
    # Recovery counts from the inject: the 3 s outage, then at most one reconnect cycle.
    assert 3.0 - 0.02 <= m.recovery_s <= 3.0 + CONNECT_TIMEOUT_S + MAX_DELAY_S + 0.1, m.as_dict()
    assert m.t_recovered.t_ns >= m.t_heal
    assert m.detection_s < 1.0 and m.t_detect.source.startswith("kernel: trader:"), m.t_detect
    assert m.counters["sent"] > 100 and m.counters["received"] == m.counters["sent"]  # nothing lost
    assert m.data_loss_ratio == 0.0
    # The journal: both hosts' faults of one coordinated start, kernel events in time order.
    (step,) = j["steps"]
    assert {a["host"] for a in step["applied"]} == {"trader", "gateway"} and step["skew_ns"] < 10_000_000
    times = [e["t_ns"] for e in j["kernel_events"]]
    assert times == sorted(times) and len(times) >= 3
    assert [a["kind"] for a in j["activities"] if a["kind"] in ("apply", "heal")] == ["apply", "heal", "heal"]
    for name, c in agents.items():
        assert c.list() == [], name


def run_cli(path: Path, out: Path, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "faultline", "run", str(path), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_rto_violation_fails_the_run_and_rollbacks_still_heal(lab, agents, tmp_path):
    hosts = {n: lab.state.hosts[n] for n in ("trader", "gateway")}
    f = write(tmp_path, partition("trader", "gateway", 3.0, rto_s=2.0, real_hosts=hosts))
    p = run_cli(f, tmp_path / "out")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, (out, err)
    lines = out.splitlines()
    assert "  Meets RTO (≤2s): ✗ NO" in lines, out
    # Recovered after the 3 s partition at the earliest (its reconnect backoff decides how long
    # after: 3.2 s to 4.5 s seen), which breaks the 2 s target either way.
    violation = re.compile(r"  RTO VIOLATION: recovery took (\d+\.\d+)s, target 2s")
    took = [float(m[1]) for line in lines if (m := violation.fullmatch(line))]
    assert len(took) == 1 and took[0] >= 3.0, out
    assert "SCENARIO FAILED: RTO" in lines
    (journal,) = (tmp_path / "out").glob("*/journal.json")
    j = json.loads(journal.read_text())
    assert_journal_shape(j)
    assert j["status"] == "failed"
    assert {"name": "rollbacks", "ok": True, "detail": "every fault healed"} in j["verdicts"]
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'failures="1"' in junit and "RTO" in junit
    for c in agents.values():
        assert c.list() == []


def test_ctrl_c_mid_fault_rolls_back_and_leaves_nothing(lab, agents, tmp_path):
    hosts = {n: lab.state.hosts[n] for n in ("trader", "gateway")}
    f = write(tmp_path, partition("trader", "gateway", 20.0, real_hosts=hosts))
    p = run_cli(f, tmp_path / "out")
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        seen.append(line)
        if "partition trader | gateway for 20 s" in line:
            break
    else:
        raise AssertionError("".join(seen))
    assert len(agents["trader"].list()) == 1  # the fault is in the kernel now
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert "SCENARIO INTERRUPTED (rollbacks ran)" in out
    assert "rollback: healed" in err and "interrupted (Ctrl-C)" in err
    (journal,) = (tmp_path / "out").glob("*/journal.json")
    j = json.loads(journal.read_text())
    assert j["status"] == "interrupted"
    assert sorted(a["name"] for a in j["activities"] if a["kind"] == "rollback") == ["gateway", "trader"]
    for c in agents.values():
        assert c.list() == []  # and the agents fixture checks tc state and journals


def test_a_run_killed_with_sigkill_takes_its_lab_processes_with_it(lab, agents, tmp_path):
    """Issue 32 item 11: `faultline run` SIGKILLed mid-fault left its workload running in the lab
    (the next run reused the lab with it there). Its processes now end with it (a parent-death
    signal, kept across `ip netns exec`); its fault ends with its lease."""
    hosts = {n: lab.state.hosts[n] for n in ("trader", "gateway")}
    f = write(tmp_path, partition("trader", "gateway", 20.0, real_hosts=hosts))
    p = subprocess.Popen([sys.executable, "-m", "faultline", "run", str(f), "--out", str(tmp_path / "out")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = str(tmp_path / "out")

    def workload() -> list[int]:
        return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()
                and marker in _cmdline(d) and "seqload" in _cmdline(d)]
    try:
        wait_until(lambda: len(workload()) == 2 or p.poll() is not None, 60, "the run's two processes")
        assert p.poll() is None, "the run ended before its processes came up"
        p.kill()
        p.wait(timeout=10)
        wait_until(lambda: not workload(), 10, "no process of the run left after SIGKILL")
    finally:
        if p.poll() is None:
            p.kill()
        for c in agents.values():
            c.heal_all()  # the partition's lease would, later


def _cmdline(d: Path) -> str:
    try:
        return (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
