"""pytest start-up with faultline's plugin loaded, against the same run without it (the peer,
measured in the same run): an unrelated project with one plain test, `pytest -q`, each side
run alternately, the median of N wall times. The goal (issue 20): at most 30 ms added.

    python -m bench.plugin_startup [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import append_result, table

RESULTS = Path(__file__).with_name("results.json")


def once(project: Path, *extra: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra], cwd=project,
                   check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        project = Path(d)
        (project / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
        once(project)  # warm the page cache and the bytecode
        with_ms, without_ms = [], []
        for _ in range(args.runs):
            with_ms.append(once(project))
            without_ms.append(once(project, "-p", "no:faultline"))
    w, wo = statistics.median(with_ms), statistics.median(without_ms)
    print(table(["pytest -q, one plain test", f"median of {args.runs} (ms)"],
                [["with faultline's plugin", f"{w:.0f}"], ["without it (-p no:faultline)", f"{wo:.0f}"],
                 ["added", f"{w - wo:+.0f}"]]))
    append_result(RESULTS, {"bench": "plugin_startup", "runs": args.runs, "with_ms": round(w, 1),
                            "without_ms": round(wo, 1), "added_ms": round(w - wo, 1)})


if __name__ == "__main__":
    main()
