"""The run's journal: every activity in order with its controller-clock time, and the journal
document (journal.json) that the report, the timeline and the scorecards read."""

from __future__ import annotations

import platform
import socket
import sys
import threading
from dataclasses import asdict
from typing import Any

import faultline
from faultline.controller.agents.clocksync import AgentClock, now_ns
from faultline.controller.env.hosts import Endpoint
from faultline.controller.model.scenario import Scenario
from faultline.controller.run import recovery
from faultline.controller.run.probes import ProbeResult


class Journal:
    """Everything that happened, in order, each with its controller-clock time."""

    def __init__(self) -> None:
        self.activities: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, kind: str, name: str, **fields: Any) -> dict[str, Any]:
        entry = {"t_ns": now_ns(), "kind": kind, "name": name, **fields}
        with self._lock:
            self.activities.append(entry)
        return entry


def status(verdicts: list[recovery.Verdict], interrupted: bool, error: str) -> str:
    return "interrupted" if interrupted else "error" if error else \
        "passed" if all(v.ok for v in verdicts) else "failed"


def document(scn: Scenario, journal: Journal, *, started_ns: int, t0_ns: int, interrupted: bool, error: str,
             endpoints: dict[str, Endpoint], clocks: dict[str, AgentClock], steps: list[dict[str, Any]],
             kernel_events: list[recovery.KernelEvent], samples: list[ProbeResult], metrics: recovery.Metrics,
             verdicts: list[recovery.Verdict]) -> dict[str, Any]:
    """journal.json: the run, self-contained (where, what, when, and what was judged)."""
    return {
        "faultline": faultline.__version__, "controller_host": socket.gethostname(),
        "platform": platform.platform(), "python": sys.version.split()[0],
        "clock": "controller CLOCK_REALTIME, ns; agent stamps corrected by the SyncClock offset",
        "scenario": {"path": scn.path, "title": scn.title, "fault_type": scn.fault_type,
                     "targets": asdict(scn.targets), "method": [s.as_dict() for s in scn.method],
                     "recovery": asdict(scn.recovery)},
        "started_ns": started_ns, "ended_ns": now_ns(), "t0_ns": t0_ns,
        "status": status(verdicts, interrupted, error),
        "error": error,
        "hosts": {n: asdict(e) for n, e in endpoints.items()},
        "clocks": {n: asdict(c) for n, c in clocks.items()},
        "steps": steps,
        "activities": journal.activities,
        "kernel_events": [asdict(e) for e in kernel_events],
        "probe_samples": [asdict(s) for s in samples],
        "metrics": metrics.as_dict(),
        "verdicts": [asdict(v) for v in verdicts],
    }
