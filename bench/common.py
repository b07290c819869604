"""What every benchmark shares: its lab, percentiles, the command line, the report."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.results import append_result, table
from faultline.controller.env.lab import Lab, LabConfig

# Its own prefix and subnet, so a benchmark never meets a test's or the demo's lab.
BENCH_LAB = LabConfig(prefix="flb", subnet4="10.75.0.0/24", subnet6="fd75::/64", run_dir=Path("/run/faultline-bench"))
RESULTS = Path("bench/results.json")


def bench_lab(config: LabConfig = BENCH_LAB) -> Lab:
    lab = Lab(config, progress=lambda m: print("  " + m, flush=True))
    lab.down()  # a run killed part way left it: start clean
    return lab


def pct(samples: Sequence[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def latency(apply_ms: Sequence[float], heal_ms: Sequence[float]) -> dict[str, float]:
    return {"apply_p50_ms": round(statistics.median(apply_ms), 3), "apply_p99_ms": round(pct(apply_ms, 0.99), 3),
            "heal_p50_ms": round(statistics.median(heal_ms), 3), "heal_p99_ms": round(pct(heal_ms, 0.99), 3)}


def parser(doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results file to append to (default {RESULTS})")
    return ap


def report(result: dict[str, object], head: Sequence[str], rows: Sequence[Sequence[object]],
           out: Path | None) -> dict[str, object]:
    """Print the table, append the result (with kernel, CPUs, commit, date) to `out`."""
    print(table(head, rows), flush=True)
    if out is not None:
        append_result(out, result)
    return result
