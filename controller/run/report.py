"""What a run tells people and tools: the chaos suite's human format (scenario block,
Recovery Metrics, RECOVERY SCORECARD), JUnit XML, and a self-contained HTML timeline."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

if TYPE_CHECKING:  # a type only: the pytest plugin's scorecard imports this module, not the runner
    from faultline.controller.run.runner import Outcome

RULE = "=" * 60
OK, NO = "✓", "✗"


def _s(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}s"


@dataclass(frozen=True)
class Row:
    """One scenario in the RECOVERY SCORECARD."""

    passed: bool
    title: str
    recovery_s: float | None
    rto_s: float
    data_loss: float | None


def header(title: str, fault_type: str) -> list[str]:
    return [RULE, f"CHAOS SCENARIO: {title}", f"Fault Type: {fault_type}", RULE]


def metrics_lines(detection_s: float | None, detected_by: str, outage_s: float | None, recovery_s: float | None,
                  after_heal_s: float | None, rto_s: float, meets_rto: bool, data_loss: str,
                  injected: bool = True, detections: Sequence[tuple[str, float | None, str]] = ()) -> list[str]:
    """`detections`: (label, seconds after the inject, what) for each kind of detection kept apart."""
    lines = ["Recovery Metrics:", f"  Detection Time: {_s(detection_s)}{f' ({detected_by})' if detected_by else ''}"]
    for label, s, what in detections:
        lines.append(f"    {label}: {_s(s)}{f' ({what})' if what else ''}")
    if outage_s is not None:
        lines.append(f"  Outage: {_s(outage_s)}")
    after = f" ({_s(after_heal_s)} after heal)" if after_heal_s is not None else ""
    lines += [f"  Recovery Time: {_s(recovery_s)}{after}",
              f"  Meets RTO (≤{rto_s:g}s): {f'{OK} YES' if meets_rto else f'{NO} NO'}",
              f"  Data Loss: {data_loss}"]
    if injected and not meets_rto:
        got = "never, within the wait" if recovery_s is None else f"{recovery_s:.3f}s"
        lines.append(f"  RTO VIOLATION: recovery took {got}, target {rto_s:g}s")
    return lines


def human(o: Outcome) -> str:
    m, s, j = o.metrics, o.scenario, o.journal
    lines = header(s.title, s.fault_type)
    for name, clk in j["clocks"].items():
        lines.append(f"Host {name}: agent {j['hosts'][name]['agent']}, clock offset "
                     f"{clk['offset_ns'] / 1e6:+.3f} ms ± {clk['uncertainty_ns'] / 1e6:.3f} ms")
    for st in j["steps"]:
        per_host = ", ".join(f"{a['host']} {(a['applied_ns'] - st['planned_ns']) / 1e6:+.3f} ms"
                             for a in st["applied"])
        lines.append(f"Step {st['step'] + 1}: {st['what']} at +{(st['planned_ns'] - j['t0_ns']) / 1e9:.3f}s "
                     f"(applied {per_host}; skew {st['skew_ns'] / 1e6:.3f} ms)")
    lines.append("")
    c, loss = m.counters, m.data_loss_ratio
    loss_text = "the workload sent nothing (0 messages)" if m.sent_nothing else "not measured" if loss is None else (
        f"{loss:.2%} ({c.get('sent', 0) - c.get('received', 0)} of {c.get('sent', 0)} "
        f"messages; {c.get('duplicates', 0)} duplicate(s)"
        f"{'' if 'violations' in c else ' discarded by the receiver'})")
    detections = [(label, m.since_inject_s(mark), mark.source if mark else "not seen")
                  for label, mark in (("network detection (kernel)", m.t_detect_network),
                                      ("application detection (probe)", m.t_detect_app))]
    lines += metrics_lines(m.detection_s, m.t_detect.source if m.t_detect else "", m.outage_s, m.recovery_s,
                           m.after_heal_s, s.targets.rto_s, m.meets_rto, loss_text, m.t_inject is not None,
                           detections if m.t_inject is not None else ())
    lines.append("")
    for v in o.verdicts:
        lines.append(f"  {OK if v.ok else NO} {v.name}: {v.detail}")
    failed = [v.name for v in o.verdicts if not v.ok]
    lines.append("")
    if o.interrupted:
        lines.append("SCENARIO INTERRUPTED (rollbacks ran)")
    elif o.status == "ERROR":
        lines.append(f"SCENARIO ERROR: {o.journal.get('error', '')} (rollbacks ran)")
    elif failed:
        lines.append(f"SCENARIO FAILED: {', '.join(failed)}")
    else:
        lines.append("SCENARIO COMPLETED")
    return "\n".join(lines)


def scorecard_rows(rows: Sequence[Row]) -> str:
    lines = [RULE, "RECOVERY SCORECARD", RULE]
    for r in rows:
        loss = "n/a" if r.data_loss is None else f"{r.data_loss:.2%}"
        lines.append(f"  {OK + ' PASS' if r.passed else NO + ' FAIL'}  {r.title:40.40} "
                     f"recovery {_s(r.recovery_s):>8} / RTO {r.rto_s:g}s  loss {loss}")
    passed = sum(r.passed for r in rows)
    lines += ["-" * 60, f"OVERALL: {passed} passed, {len(rows) - passed} failed",
              f"Success Rate: {passed / len(rows):.1%}" if rows else "Success Rate: n/a"]
    return "\n".join(lines)


def scorecard(outcomes: Sequence[Outcome]) -> str:
    return scorecard_rows([Row(o.passed, o.scenario.title, o.metrics.recovery_s, o.scenario.targets.rto_s,
                               o.metrics.data_loss_ratio) for o in outcomes])


def junit(outcomes: Sequence[Outcome]) -> str:
    """One testsuite per scenario, one testcase per assertion."""
    root = ET.Element("testsuites", name="faultline")
    for o in outcomes:
        j = o.journal
        suite = ET.SubElement(root, "testsuite", name=o.scenario.title, tests=str(len(o.verdicts)),
                              failures=str(sum(not v.ok for v in o.verdicts)),
                              time=f"{(j['ended_ns'] - j['started_ns']) / 1e9:.3f}")
        props = ET.SubElement(suite, "properties")
        for k, v in o.metrics.as_dict().items():
            if not isinstance(v, dict):
                ET.SubElement(props, "property", name=k, value="" if v is None else str(v))
        if o.status == "ERROR":
            suite.set("errors", "1")
        for v in o.verdicts:
            case = ET.SubElement(suite, "testcase", classname=Path(o.scenario.path).stem, name=v.name)
            if not v.ok:
                tag = "error" if o.status == "ERROR" and v.name == "completed" else "failure"
                ET.SubElement(case, tag, message=v.detail).text = v.detail
            ET.SubElement(case, "system-out").text = v.detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def timeline_html(o: Outcome) -> str:
    """timeline.html: the scenario's title, its timeline picture and its block."""
    return ("<!doctype html><meta charset='utf-8'><title>faultline: " + html.escape(o.scenario.title) +
            "</title><body style='font-family:sans-serif'><h2>" + html.escape(o.scenario.title) + "</h2>" +
            report_html(o) + "</body>")


def report_html(o: Outcome) -> str:
    """The picture and the CHAOS SCENARIO block with its metrics, as one HTML fragment (a test's
    extra in a pytest-html report, the body of timeline.html)."""
    return timeline_svg(o) + f"<pre>{html.escape(human(o))}</pre>"


def timeline_svg(o: Outcome) -> str:
    """Faults as bands per host, probe samples and kernel events as marks, the RTO line."""
    j, m = o.journal, o.metrics
    t0 = j["t0_ns"] or j["started_ns"]
    rto_end = (m.t_inject or t0) + int(o.scenario.targets.rto_s * 1e9)
    last = max([j["ended_ns"]] if not m.t_inject else [m.t_recovered.t_ns if m.t_recovered else 0,
                                                       m.t_heal or 0, min(rto_end, j["ended_ns"])])
    first = min([t0] + [s["started_ns"] for s in j["probe_samples"][:1]] + [e["t_ns"] for e in j["kernel_events"][:1]])
    span = max(last - first, 1)
    hosts = list(j["hosts"])
    left, width, row = 130, 900, 34
    height = row * (len(hosts) + 2) + 60

    def x(t: int) -> float:
        return left + width * (t - first) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}" '
           'font-family="sans-serif" font-size="12">']
    for i, h in enumerate([*hosts, "probe", "kernel"]):
        y = 20 + i * row
        out.append(f'<text x="4" y="{y + 20}">{html.escape(h)}</text>')
        out.append(f'<line x1="{left}" x2="{left + width}" y1="{y + row}" y2="{y + row}" stroke="#ddd"/>')
    healed = {a["fault_id"]: a.get("healed_ns") for a in j["activities"]
              if a["kind"] in ("heal", "rollback") and "fault_id" in a}
    for st in j["steps"]:
        for a in st["applied"]:
            y = 24 + hosts.index(a["host"]) * row
            end = healed.get(a["fault_id"]) or last
            out.append(f'<rect x="{x(a["applied_ns"]):.1f}" y="{y}" width="{max(x(end) - x(a["applied_ns"]), 1):.1f}" '
                       f'height="{row - 8}" fill="#f4a3a3"><title>{html.escape(st["what"])} {a["fault_id"]}'
                       '</title></rect>')
    y = 20 + len(hosts) * row
    for s in j["probe_samples"]:
        color = "#2a2" if s["ok"] else "#d22"
        out.append(f'<rect x="{x(s["started_ns"]):.1f}" y="{y + 8}" width="2" height="{row - 14}" fill="{color}">'
                   f'<title>{html.escape(s["probe"] + ": " + s["detail"])}</title></rect>')
    y += row
    for e in j["kernel_events"]:
        color = "#06c" if e["new_state"] == "ESTABLISHED" else "#c60"
        out.append(f'<circle cx="{x(e["t_ns"]):.1f}" cy="{y + row / 2}" r="4" fill="{color}">'
                   f'<title>{html.escape(e["host"] + " " + e["kind"] + " " + e["old_state"] + "->" + e["new_state"])}'
                   '</title></circle>')
    step_s = 1 if span <= 30e9 else 10 if span <= 300e9 else 60
    k = -int((t0 - first) // (step_s * 1e9))
    while (t := t0 + int(k * step_s * 1e9)) <= last:
        out.append(f'<text x="{x(t):.1f}" y="12" fill="#888" font-size="10">{k * step_s:+d}s</text>')
        k += 1
    if rto_end > last:
        out.append(f'<text x="{left + width - 260}" y="{height - 4}" fill="#a0a">RTO line at '
                   f'+{o.scenario.targets.rto_s:g}s: off the right edge</text>')
    marks = [("inject", m.t_inject), ("detect", m.t_detect.t_ns if m.t_detect else None), ("heal", m.t_heal),
             ("recovered", m.t_recovered.t_ns if m.t_recovered else None), (f"RTO {o.scenario.targets.rto_s:g}s",
                                                                            rto_end if rto_end <= last else None)]
    for i, (name, t) in enumerate(marks):
        if t is None:
            continue
        color = "#000" if not name.startswith("RTO") else "#a0a"
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="14" y2="{height - 30}" stroke="{color}" '
                   'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x(t) + 3:.1f}" y="{height - 16 + (i % 2) * 12}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def write(o: Outcome, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"journal": out_dir / "journal.json", "junit": out_dir / "junit.xml", "timeline": out_dir / "timeline.html"}
    paths["journal"].write_text(json.dumps(o.journal, indent=1, default=str))
    paths["junit"].write_text(junit([o]))
    paths["timeline"].write_text(timeline_html(o))
    return paths
