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
