"""One chaos_scenario's result, its printed block, and the session's scorecard (the pytest
plugin's end-of-run summary; the CLI prints the same scorecard from its runs)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faultline.controller.run import report
from faultline.controller.suite.key_metrics import as_json as key_metrics_json
from faultline.controller.suite.recovery_timer import RecoveryMetrics

if TYPE_CHECKING:  # the runner (and grpc under it) loads only where outcomes exist
    from faultline.controller.run.runner import Outcome


@dataclass
class ScenarioResult:
    name: str
    fault_type: str
    nodeid: str
    passed: bool
    metrics: RecoveryMetrics
    violations: list[str] = field(default_factory=list)
    error: str = ""


def scenario_text(r: ScenarioResult) -> str:
    m = r.metrics
    loss = "the workload sent nothing (0 messages)" if m.sent_nothing else \
        "not measured" if m.data_loss is None else f"{m.data_loss:.2%}"
    detections = [("network detection (kernel)", m.network_detection, ""),
                  ("application detection (the test's mark)", m.application_detection, "")]
    lines = report.header(r.name, r.fault_type) + report.metrics_lines(
        m.detection_time, m.detected_by, None, m.recovery_time, m.time_after_heal, m.rto_target, m.meets_rto, loss,
        detections=[d for d in detections if d[1] is not None])
    if m.sent_nothing:
        lines.append("  VIOLATION: data loss: the workload sent nothing, so no loss can be judged")
    lines += [f"  VIOLATION: {v}" for v in r.violations]
    if r.error:
        lines.append(f"  ERROR: {r.error}")
    lines.append("SCENARIO COMPLETED" if r.passed else "SCENARIO FAILED")
    return "\n".join(lines)


def scorecard(results: list[ScenarioResult]) -> str:
    rows = [report.Row(r.passed, r.name, r.metrics.recovery_time, r.metrics.rto_target, r.metrics.data_loss)
            for r in results]
    return report.scorecard_rows(rows)


def write_json(results: list[ScenarioResult], path: Path) -> None:
    path.write_text(json.dumps([{**asdict(r), "metrics": asdict(r.metrics)} for r in results], indent=1))


def write_outcomes(outcomes: list[Outcome], path: Path) -> None:
    """The trading suite's results file (build/chaos/results.json): per scenario its verdicts,
    counters and all sixteen Key Metrics; what `faultline readiness` judges."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([
        {"title": o.scenario.title, "file": o.scenario.path, "passed": o.passed, "recovery_s": o.metrics.recovery_s,
         "rto_s": o.scenario.targets.rto_s, "data_loss_ratio": o.metrics.data_loss_ratio,
         "counters": o.metrics.counters,
         "verdicts": [{"name": v.name, "ok": v.ok, "detail": v.detail} for v in o.verdicts],
         "key_metrics": key_metrics_json(o)} for o in outcomes], indent=1))
