"""The chaos suite: the trading lab's scenarios run for real, one lab per scenario.

    pytest tests/chaos -m chaos            (slow marks the 30 s cases)

Each scenario's journal, JUnit and timeline go to build/chaos/<scenario>/; the RECOVERY
SCORECARD prints at the end and build/chaos/results.json holds every outcome.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from controller import report, runner, scenario
from tests.netns import why_no_lab

# Inside the VM stage the checkout is read-only: reports go where the VM brings files out.
OUT = Path(os.environ["FAULTLINE_VM_OUT"]) / "chaos" if os.environ.get("FAULTLINE_VM_OUT") else Path("build/chaos")
OUTCOMES: list[runner.Outcome] = []


@pytest.fixture
def run_scenario():
    why = why_no_lab()
    if why:
        pytest.skip(why)

    def run(path: Path, scorecard: bool = True) -> runner.Outcome:
        scn = scenario.load(path)
        out = OUT / path.stem
        o = runner.run(scn, runner.RunOptions(out_dir=out))
        report.write(o, out)
        print(report.human(o))
        if scorecard:  # a deliberately broken workload's run is a test of the suite, not a scenario
            OUTCOMES.append(o)
        return o
    return run


def failed(o: runner.Outcome) -> list[str]:
    return [f"{v.name}: {v.detail}" for v in o.verdicts if not v.ok]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not OUTCOMES:
        return
    terminalreporter.write_line("")
    for line in report.scorecard(OUTCOMES).splitlines():
        terminalreporter.write_line(line)
    OUT.mkdir(parents=True, exist_ok=True)
    results = [{"title": o.scenario.title, "file": o.scenario.path, "passed": o.passed,
                "recovery_s": o.metrics.recovery_s, "rto_s": o.scenario.targets.rto_s,
                "data_loss_ratio": o.metrics.data_loss_ratio, "counters": o.metrics.counters,
                "verdicts": [{"name": v.name, "ok": v.ok, "detail": v.detail} for v in o.verdicts]}
               for o in OUTCOMES]
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    terminalreporter.write_line(f"chaos results: {OUT / 'results.json'} (per scenario: {OUT}/<name>/)")
