"""Every benchmark runs, with a tiny N, so none rots. No time is asserted: bench/ reports ratios."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.netns import why_no_lab


def test_observe_cost_runs_and_records(tmp_path):
    why = why_no_lab() or (None if shutil.which("iperf3") else "iperf3 missing (scripts/setup.sh --with-vm)")
    if why:
        pytest.skip(why)
    from bench import observe_cost

    out = tmp_path / "results.json"
    observe_cost.run(seconds=1, rounds=1, out=out)
    [run] = json.loads(out.read_text())
    assert run["bench"] == "observe_cost" and run["kernel"] and run["commit"]
    rows = {r["mode"]: r for r in run["rows"]}
    assert rows["no watcher"]["ratio_to_unwatched"] == 1.0 and rows["no watcher"]["events_streamed"] == 0
    assert all(r["median_gbps"] > 0 for r in rows.values())
    assert rows["watched (all probes, RTT every segment)"]["events_streamed"] > 0  # the probes really ran


def test_apply_latency_runs_and_records(tmp_path):
    why = why_no_lab()
    if why:
        pytest.skip(why)
    from bench import apply_latency

    out = tmp_path / "results.json"
    apply_latency.run(n=5, out=out)
    [run] = json.loads(out.read_text())
    rows = {r["mode"]: r for r in run["rows"]}
    assert run["bench"] == "apply_latency" and run["cycles"] == 5
    assert rows["faultline mechanism (no gRPC)"]["apply_p50_ratio_to_floor"] == 1.0
    assert all(r["apply_p50_ms"] > 0 and r["heal_p50_ms"] > 0 for r in rows.values())


def test_coordinated_start_runs_and_records(tmp_path):
    why = why_no_lab()
    if why:
        pytest.skip(why)
    from bench import coordinated_start

    out = tmp_path / "results.json"
    coordinated_start.run([2, 3], rounds=2, out=out)
    [run] = json.loads(out.read_text())
    assert [(r["agents"], r["mode"]) for r in run["rows"]] == [
        (2, "at one instant T"), (2, "sent at once, no T"), (3, "at one instant T"), (3, "sent at once, no T")]
    assert all(r["skew_max_ms"] >= r["skew_p50_ms"] >= 0 for r in run["rows"])


def test_footprint_runs_and_records(tmp_path):
    why = why_no_lab()
    if why:
        pytest.skip(why)
    from bench import footprint

    out = tmp_path / "results.json"
    footprint.run(starts=1, out=out)
    [run] = json.loads(out.read_text())
    rows = {r["what"]: r for r in run["rows"]}
    assert rows["agent RSS idle"]["faultline"] > rows["agent RSS idle"]["peer"] > 0
    assert rows["agent start to first served request"]["faultline"] > 0
