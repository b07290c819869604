"""bench/results.json: every benchmark run appended with where and when it ran."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def context() -> dict[str, object]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "commit": commit.stdout.strip() or "unknown",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def append_result(path: Path, result: dict[str, object]) -> None:
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({**context(), **result})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=2) + "\n")


def table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, head))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)
