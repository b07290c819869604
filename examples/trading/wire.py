"""Small file helpers the lab's processes share: fsynced JSON-lines logs, atomic JSON files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class AppendLog:
    """JSON lines appended and fsynced: what is in the file happened, also after a kill -9."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, rec: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())
        os.fsync(self._fd)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a torn last line: the write it announced never completed
    return out


def write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)  # a reader never sees half a file
