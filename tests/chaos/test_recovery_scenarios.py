"""Recovery on the trading lab, by disconnect duration (3, 10, 30 s: `-k "10"` selects the 10 s
cases): RTO compliance, state consistency, data completeness; order replay (and the unsafe
replay caught); graceful operations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faultline.controller.suite import results
from faultline.examples.trading import check
from tests.chaos.conftest import TRADING, assert_recovered, verdict

pytestmark = [pytest.mark.chaos, pytest.mark.root]
CATEGORY = "recovery scenarios"  # which Key Metrics its tests report (controller/suite/key_metrics.py)

DISCONNECTS = [pytest.param(3, id="3s"), pytest.param(10, id="10s"),
               pytest.param(30, id="30s", marks=pytest.mark.slow)]


@pytest.mark.parametrize("seconds", DISCONNECTS)
class TestRecoveryByDisconnectDuration:
    def test_rto_compliance(self, trading, seconds):
        o = trading(f"partition_trader_gateway_{seconds}s")
        assert o.metrics.meets_rto, verdict(o, "RTO")

    def test_state_consistency(self, trading, seconds):
        o = trading(f"partition_trader_gateway_{seconds}s")
        assert o.metrics.counters["violations"] == 0, verdict(o, "integrity")

    def test_data_completeness(self, trading, seconds):
        o = trading(f"partition_trader_gateway_{seconds}s")
        assert o.metrics.data_loss_ratio == 0, verdict(o, "data loss")
        verdict(o, "market-data continuity")


class TestOrderReplay:
    def test_replay_after_a_kill_executes_each_order_once(self, trading):
        assert_recovered(trading("trader_kill_restart"))

    def test_unsafe_replay_is_caught_with_the_duplicated_order_ids(self, run_scenario):
        """The trader with replay under new ids executes orders twice; the check names them."""
        o = run_scenario(Path(__file__).with_name("broken_trader.yaml"), scorecard=False)
        assert not o.passed
        integrity = next(v for v in o.verdicts if v.name == "integrity")
        assert not integrity.ok and o.metrics.counters["duplicates"] > 0
        _, validator = check.report(Path("build/chaos/broken_trader"), in_flight_s=0)
        duplicates = [v for v in validator.violations if v.kind == "duplicate"]
        assert duplicates and all(v.subject.startswith("T") for v in duplicates)
        assert len(duplicates) == o.metrics.counters["duplicates"]  # each executed twice, named once
        print("duplicated:", ", ".join(v.subject for v in duplicates))


class TestGracefulOperations:
    def test_graceful_shutdown_and_restart(self, trading):
        assert_recovered(trading("trader_graceful_restart"))


class TestReadinessChecklist:
    def test_a_run_past_a_too_tight_rto_fails_the_rto_line_and_exits_1(self, trading, run_scenario, tmp_path):
        """A test copy of the 3 s partition with a 0.5 s RTO (no reconnect after a 3 s cut is that
        fast) run for real beside the shipped one: `faultline readiness` on their results file
        prints ✗ on the RTO line, naming the copy, and exits 1."""
        shutil.copy(TRADING / "workload.yaml", tmp_path)
        tight = tmp_path / "partition_3s_tight_rto.yaml"
        text = (TRADING / "partition_trader_gateway_3s.yaml").read_text()
        tight.write_text(text.replace("rto_s: 30", "rto_s: 0.5").replace(
            '"Trading: trader-gateway partition, 3 s"', '"Trading: partition 3 s, RTO 0.5 s (test copy)"'))
        o = run_scenario(tight, scorecard=False)
        assert not o.passed and not o.metrics.meets_rto and o.metrics.recovery_s > 0.5
        path = tmp_path / "results.json"
        results.write_outcomes([trading("partition_trader_gateway_3s"), o], path)
        r = subprocess.run([str(Path(sys.executable).parent / "faultline"), "readiness", str(path)],
                           capture_output=True, text=True, timeout=60, check=False)
        print(r.stdout)
        rto = next(line for line in r.stdout.splitlines() if "Recovery within the RTO" in line)
        assert r.returncode == 1, r.stdout + r.stderr
        assert rto.startswith("  ✗ ") and "RTO missed: Trading: partition 3 s, RTO 0.5 s (test copy)" in rto
        assert r.stdout.splitlines()[-1].startswith("NOT READY")
