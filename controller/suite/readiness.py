"""The Production Readiness Checklist, judged from a chaos run's results file: each line ✓ or ✗
with the figures behind it. Reads both results files: the trading suite's
(build/chaos/results.json: verdicts per scenario) and the pytest plugin's (--faultline-json:
metrics and violations per chaos_scenario). A line no scenario measured does not hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    """One scenario's result, in the terms of the checklist."""

    name: str
    passed: bool
    recovery_s: float | None
    rto_s: float | None
    meets_rto: bool | None
    data_loss: float | None
    verdicts: dict[str, tuple[bool, str]] = field(default_factory=dict)  # name -> (ok, detail)
    violations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Line:
    text: str
    ok: bool
    figures: str


def load(path: Path) -> list[Case]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a results file ({e})") from None
    if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
        raise ValueError(f"{path}: a list of scenario results (build/chaos/results.json or --faultline-json)")
    return [_case(r, path) for r in raw]


def _case(r: dict[str, Any], path: Path) -> Case:
    if "verdicts" in r:  # the trading suite's results.json
        v = {x["name"]: (bool(x["ok"]), str(x["detail"])) for x in r["verdicts"]}
        return Case(r["title"], bool(r["passed"]), r.get("recovery_s"), r.get("rto_s"),
                    v["RTO"][0] if "RTO" in v else None, r.get("data_loss_ratio"), v)
    if "metrics" in r:  # the pytest plugin's --faultline-json
        m = r["metrics"]
        return Case(r["name"], bool(r["passed"]), m.get("recovery_time"), m.get("rto_target"), m.get("meets_rto"),
                    m.get("data_loss"), {}, list(r.get("violations", [])))
    raise ValueError(f"{path}: an entry with neither verdicts nor metrics: {sorted(r)}")


def _worst(cases: list[Case], value: Callable[[Case], float | None]) -> Case | None:
    measured = [c for c in cases if value(c) is not None]
    return max(measured, key=lambda c: value(c) or 0.0, default=None)


def _verdict_line(cases: list[Case], text: str, name: str, by_violations: bool = False) -> Line:
    """Holds when every scenario that judged `name` held it (with by_violations, a plugin result,
    which has no verdicts, counts by its StateValidator violations)."""
    bad, judged = [], 0
    for c in cases:
        if name in c.verdicts:
            judged += 1
            if not c.verdicts[name][0]:
                bad.append(f"{c.name}: {c.verdicts[name][1]}")
        elif by_violations and not c.verdicts:
            judged += 1
            bad += [f"{c.name}: {v}" for v in c.violations]
    if not judged:
        return Line(text, False, "not measured by any scenario")
    more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    return Line(text, not bad, "; ".join(bad[:3]) + more if bad else f"{judged} scenario(s) checked, all held")


def checklist(cases: list[Case], max_data_loss: float = 0.05) -> list[Line]:
    out = []
    n_pass = sum(c.passed for c in cases)
    failing = [c.name for c in cases if not c.passed]
    out.append(Line("Every chaos scenario passes", not failing,
                    f"{n_pass}/{len(cases)} passed" + (f"; failed: {', '.join(failing[:3])}" if failing else "")))
    worst = _worst(cases, lambda c: c.recovery_s)
    missed = [c for c in cases if c.meets_rto is False]
    rtos = {c.rto_s for c in cases if c.rto_s is not None}
    target = f"≤ {rtos.pop():g} s" if len(rtos) == 1 else "each scenario's own"  # not the slowest one's
    figures = "no recovery measured" if worst is None else \
        f"slowest {worst.recovery_s:.3f} s ({worst.name}, RTO {worst.rto_s:g} s)"
    if missed:
        figures += "; RTO missed: " + ", ".join(
            f"{c.name} ({'never recovered' if c.recovery_s is None else f'{c.recovery_s:.3f} s'})" for c in missed)
    out.append(Line(f"Recovery within the RTO ({target}) in every scenario", worst is not None and not missed,
                    figures))
    loss = _worst(cases, lambda c: c.data_loss)
    out.append(Line(f"Data loss ≤ {max_data_loss:.0%} in every scenario",
                    loss is not None and (loss.data_loss or 0.0) <= max_data_loss,
                    "not measured by any scenario" if loss is None else
                    f"worst {loss.data_loss:.2%} ({loss.name})"))
    out.append(_verdict_line(cases, "No lost or duplicated orders; positions intact", "integrity", by_violations=True))
    out.append(_verdict_line(cases, "Market data continuity ≥ 95 % through every fault", "market-data continuity"))
    out.append(_verdict_line(cases, "Every fault rolled back (nothing left in the kernel)", "rollbacks"))
    return out


def render(lines: list[Line]) -> str:
    width = max(len(x.text) for x in lines)
    rows = [f"  {'✓' if x.ok else '✗'} {x.text:<{width}}  {x.figures}" for x in lines]
    held = sum(x.ok for x in lines)
    return "\n".join(["PRODUCTION READINESS CHECKLIST", *rows,
                      f"READY: all {len(lines)} lines hold" if held == len(lines)
                      else f"NOT READY: {len(lines) - held} of {len(lines)} lines do not hold"])
