"""Run scenario files one after another (`faultline run`, `faultline demo`): each in its own
lab, its block printed and its files written; the scorecard and one JUnit file at the end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def run_scenarios(scenarios: list[Any], out: Path, keep_lab: bool = False, quiet: bool = False,
                  lab_config: Any = None, tls_dir: Path | None = None, ssh_config: Path | None = None) -> int:
    """Run each scenario (its own lab), print its block, write its files; the scorecard at the end."""
    from faultline.controller.env.lab import LabConfig
    from faultline.controller.run import report, runner

    live = sys.stderr.isatty() and not quiet

    def event(msg: str) -> None:
        if not quiet:
            print(("\r\033[K" if live else "") + msg, file=sys.stderr, flush=True)

    def status(msg: str) -> None:
        if live:
            print("\r\033[K" + msg[:150], end="", file=sys.stderr, flush=True)

    outcomes = []
    for i, scn in enumerate(scenarios):
        sub = out / f"{i + 1:02d}-{Path(scn.path).stem}"
        event(f"== {scn.title} ({scn.path}) -> {sub}")
        o = runner.run(scn, runner.RunOptions(out_dir=sub, lab_config=lab_config or LabConfig(), keep_lab=keep_lab,
                                              event=event, status=status, tls_dir=tls_dir,
                                              ssh_config=ssh_config))
        paths = report.write(o, sub)
        print(report.human(o), flush=True)
        print(f"journal {paths['journal']}  junit {paths['junit']}  timeline {paths['timeline']}\n", flush=True)
        outcomes.append(o)
        if o.interrupted:
            break
    if len(scenarios) > 1:
        print(report.scorecard(outcomes))
    (out / "junit.xml").write_text(report.junit(outcomes))
    if any(o.interrupted for o in outcomes):
        return 130
    return 0 if all(o.passed for o in outcomes) else 1
