"""The audit log: one JSON line per request - who, what, the verdict, the kernel change and
its undo - appended and fsynced before the answer leaves. Never holds key material."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, who: str, method: str, verdict: str, sync: bool = False, **fields: Any) -> None:
        """sync: fsync before returning (changes and refusals); reads are only appended."""
        line = json.dumps({"t_ns": time.time_ns(), "who": who, "method": method, "verdict": verdict, **fields},
                          sort_keys=True, default=str) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
