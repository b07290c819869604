"""Every benchmark runs, with a tiny N, so none rots. No time is asserted: bench/ reports ratios."""

from __future__ import annotations

import json
import shutil

import pytest

from testkit.netns import why_no_lab


def needs(*tools: str) -> None:
    """Skip, saying why, without the lab or a program the benchmark runs."""
    why = why_no_lab() or next((f"{t} missing (scripts/setup.sh --with-vm)" for t in tools if not shutil.which(t)),
                               None)
    if why:
        pytest.skip(why)


def test_observe_cost_runs_and_records(tmp_path):
    needs("iperf3")
    from bench import observe_cost

    out = tmp_path / "results.json"
    observe_cost.run(seconds=1, rounds=1, out=out, rate_seconds=1, rates=(2000, 0))
    [run] = json.loads(out.read_text())
    assert run["bench"] == "observe_cost" and run["kernel"] and run["commit"]
    rows = {r["mode"]: r for r in run["rows"]}
    assert rows["no watcher"]["ratio_to_unwatched"] == 1.0 and rows["no watcher"]["events_streamed"] == 0
    assert all(r["median_gbps"] > 0 for r in rows.values())
    assert rows["watched (all probes, RTT every segment)"]["events_streamed"] > 0  # the probes really ran
    assert [r["offered_segments_per_s"] for r in run["event_rate"]] in ([2000], [2000, 0])
    assert all(r["events"] > 0 for r in run["event_rate"]), run["event_rate"]
    assert run["max_sustained_events_per_s"] == max(r["events_per_s"] for r in run["event_rate"] if not r["lost"])


def test_apply_latency_runs_and_records(tmp_path):
    needs("clang")
    from bench import apply_latency

    out = tmp_path / "results.json"
    apply_latency.run(n=5, out=out)
    [run] = json.loads(out.read_text())
    rows = {r["mode"]: r for r in run["rows"]}
    assert run["bench"] == "apply_latency" and run["cycles"] == 5 and run["fault"] == "DISCONNECT (eBPF)"
    assert set(rows) == {"faultline end to end (gRPC)", "faultline mechanism (no gRPC)", "tc command"}
    assert rows["faultline mechanism (no gRPC)"]["apply_p50_ratio_to_floor"] == 1.0
    assert rows["faultline end to end (gRPC)"]["apply_p50_ratio_to_faultline"] == 1.0
    assert all(r["apply_p50_ms"] > 0 and r["heal_p50_ms"] > 0 for r in rows.values())


def test_coordinated_start_runs_and_records(tmp_path):
    needs()
    from bench import coordinated_start

    out = tmp_path / "results.json"
    coordinated_start.run([2, 3], rounds=2, out=out)
    [run] = json.loads(out.read_text())
    assert [(r["agents"], r["mode"]) for r in run["rows"]] == [
        (2, "at one instant T"), (2, "sent at once, no T"), (3, "at one instant T"), (3, "sent at once, no T")]
    assert all(r["skew_max_ms"] >= r["skew_p50_ms"] >= 0 for r in run["rows"])


def test_footprint_runs_and_records(tmp_path):
    needs()
    from bench import footprint

    out = tmp_path / "results.json"
    footprint.run(starts=1, out=out)
    [run] = json.loads(out.read_text())
    rows = {r["what"]: r for r in run["rows"]}
    assert rows["agent RSS idle"]["faultline"] > rows["agent RSS idle"]["peer"] > 0
    assert rows["agent start to first served request"]["faultline"] > 0


def test_accuracy_runs_and_records(tmp_path):
    needs()
    from bench import accuracy

    out = tmp_path / "results.json"
    accuracy.run(packets=400, out=out)
    [run] = json.loads(out.read_text())
    assert [(r["tool"], r["mechanism"], r["requested"]) for r in run["rows"]] == [
        ("faultline", "eBPF", 5), ("faultline", "eBPF", 20), ("faultline", "eBPF", 50)]
    for r in run["rows"]:
        lo, hi = r["interval_99"]
        assert lo <= r["measured"] <= hi and r["samples"] == 400
    assert 30 < run["rows"][2]["measured"] < 70  # the loss really happened


def test_detection_runs_and_records(tmp_path):
    needs("redis-server")
    from bench import detection

    out = tmp_path / "results.json"
    detection.run(rounds=1, out=out)
    [run] = json.loads(out.read_text())
    stream, probe = run["rows"]
    assert stream["mode"].startswith("faultline") and probe["mode"] == "probe polling every 1 s"
    assert 0 <= stream["median_ms"] and 0 <= probe["median_ms"] <= 1000 + 500  # one poll period, plus its run
