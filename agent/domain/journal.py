"""Durable record of kernel changes and their undo, written before each change is made.

An append-only JSON-lines file: `{"seq", "at_ns", "fault_id", "change", "undo"}` when a
change is about to be made, `{"release": seq}` once it has been undone. Every append is
fsynced, so after a crash the pending entries are exactly the changes that may still be
in the kernel. When nothing is pending the file is truncated: an empty journal means
the agent believes it left nothing behind.

A torn last line (a crash inside a write) is cut off, durably, when the journal is opened
and before every append, so the next record starts on a line of its own instead of being glued
to the torn one (and lost to the next recovery). An unreadable line elsewhere is skipped.

A record is all or nothing: a write that cannot complete (a full disk, EIO) is cut back to
where it began and refused as Exhausted naming the directory and the bytes free, before the
change is made. A release that cannot be written is kept in memory and written before the next
record (an undo path never fails on the journal; at worst a later recovery repeats an undo).
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

from faultline.agent.domain.errors import Exhausted
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
        self._unreleased: set[int] = set()  # undone, but the release record could not be written yet
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

    def _append_lines(self, recs: list[dict[str, Any]]) -> None:
        """Write whole lines or nothing: on a failure the file is cut back to where they began."""
        data = b"".join((json.dumps(r, sort_keys=True) + "\n").encode() for r in recs)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o600)
        except OSError as e:
            raise self._refused(e) from None
        try:
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":  # a torn tail (a failed write, a crash)
                start = self._last_newline(fd, start)
                os.ftruncate(fd, start)
            try:
                done = 0
                while done < len(data):  # a short write is not an error: write the rest
                    done += os.write(fd, data[done:])
                os.fsync(fd)
            except OSError as e:
                try:
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                except OSError:
                    log.error("journal %s: could not cut a failed write back to %d bytes", self.path, start)
                raise self._refused(e) from None
        finally:
            os.close(fd)

    @staticmethod
    def _last_newline(fd: int, size: int) -> int:
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        cut = tail.rfind(b"\n")
        return 0 if cut < 0 else size - len(tail) + cut + 1

    def _refused(self, e: OSError) -> Exhausted:
        try:
            st = os.statvfs(self.path.parent)
            free = f"{st.f_bavail * st.f_frsize} bytes free"
        except OSError:
            free = "free space unknown"
        return Exhausted(f"the state dir {self.path.parent} cannot take the journal record that must precede "
                         f"this change ({e.strerror}; {free}): nothing was changed")

    def record(self, fault_id: str, change: dict[str, Any], undo: dict[str, Any]) -> int:
        """Write a change and its undo durably. Call before making the change."""
        with self._lock:
            self._seq += 1
            entry = Entry(self._seq, time.time_ns(), fault_id, change, undo)
            owed = [{"release": seq} for seq in sorted(self._unreleased)]
            self._append_lines([*owed,
                                {"seq": entry.seq, "at_ns": entry.at_ns, "fault_id": fault_id, "change": change,
                                 "undo": undo}])
            self._unreleased.clear()
            self._pending[entry.seq] = entry
            return entry.seq

    def release(self, seq: int) -> None:
        """The change `seq` has been undone (or never happened)."""
        with self._lock:
            if self._pending.pop(seq, None) is None:
                return
            try:
                if self._pending:
                    self._append_lines([{"release": r} for r in sorted(self._unreleased | {seq})])
                else:
                    self._truncate()
                self._unreleased.clear()
            except (Exhausted, OSError) as e:  # the change is undone: never fail the undo for its record
                self._unreleased.add(seq)
                log.error("journal %s: release of %d not written (%s); written with the next record", self.path,
                          seq, e)

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
