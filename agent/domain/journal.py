"""Durable record of kernel changes and their undo, written before each change is made.

An append-only JSON-lines file: `{"seq", "at_ns", "fault_id", "change", "undo"}` when a
change is about to be made, `{"release": seq}` once it has been undone. Every append is
fsynced, so after a crash the pending entries are exactly the changes that may still be
in the kernel. When nothing is pending the file is truncated: an empty journal means
the agent believes it left nothing behind.

A torn last line (a crash inside a write) is cut off, durably, when the journal is opened,
so the next record starts on a line of its own instead of being glued to the torn one
(and lost to the next recovery). An unreadable line elsewhere is skipped, not fatal.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from faultline.agent.domain.trust import NOFOLLOW

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """What a mechanism needs of the journal: record a change with its undo before making it,
    release the record once the change is undone."""

    def record(self, fault_id: str, change: dict[str, Any], undo: dict[str, Any]) -> int: ...
    def release(self, seq: int) -> None: ...


@dataclass(frozen=True)
class Entry:
    seq: int
    at_ns: int
    fault_id: str
    change: dict[str, Any]
    undo: dict[str, Any]


class Journal:
    FILE = "journal.jsonl"    # the faults' changes: empty whenever no fault is active
    HOOKS = "hooks.jsonl"     # the agent's standing hooks (clsact): empty whenever it is not running

    def __init__(self, state_dir: Path, name: str = FILE) -> None:
        self.path = Path(state_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: dict[int, Entry] = {e.seq: e for e in self._read()}
        self._seq = max(self._pending, default=0)

    def _read(self) -> list[Entry]:
        try:
            fd = os.open(self.path, os.O_RDONLY | NOFOLLOW)
        except FileNotFoundError:
            return []
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        entries: dict[int, Entry] = {}
        lines = data.splitlines(keepends=True)
        offset = 0
        for n, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
                if "release" in rec:
                    entries.pop(int(rec["release"]), None)
                else:
                    entries[int(rec["seq"])] = Entry(
                        int(rec["seq"]), int(rec["at_ns"]), rec["fault_id"], rec["change"], rec["undo"]
                    )
                torn = not line.endswith(b"\n")
            except (ValueError, KeyError, TypeError):
                # The crash came before the fsync, so the change it announced was never made.
                # Anywhere but the end, someone edited the file: skipped, not fatal.
                log.warning("journal %s: ignoring unreadable line %d", self.path, n)
                torn = True
            if torn and n == len(lines):
                self._cut(offset, offset + len(line))
            offset += len(line)
        return list(entries.values())

    def _cut(self, at: int, size: int) -> None:
        log.warning("journal %s: cutting a torn tail of %d byte(s)", self.path, size - at)
        fd = os.open(self.path, os.O_WRONLY | NOFOLLOW)
        try:
            os.ftruncate(fd, at)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append(self, rec: dict[str, Any]) -> None:
        data = (json.dumps(rec, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def record(self, fault_id: str, change: dict[str, Any], undo: dict[str, Any]) -> int:
        """Write a change and its undo durably. Call before making the change."""
        with self._lock:
            self._seq += 1
            entry = Entry(self._seq, time.time_ns(), fault_id, change, undo)
            self._append(
                {"seq": entry.seq, "at_ns": entry.at_ns, "fault_id": fault_id, "change": change, "undo": undo}
            )
            self._pending[entry.seq] = entry
            return entry.seq

    def release(self, seq: int) -> None:
        """The change `seq` has been undone (or never happened)."""
        with self._lock:
            if self._pending.pop(seq, None) is None:
                return
            if self._pending:
                self._append({"release": seq})
            else:
                self._truncate()

    def _truncate(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> list[Entry]:
        """Entries not yet undone, oldest first."""
        with self._lock:
            return sorted(self._pending.values(), key=lambda e: e.seq)

    def is_empty(self) -> bool:
        with self._lock:
            return not self._pending
