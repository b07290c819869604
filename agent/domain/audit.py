"""The audit log: one JSON line per request and per kernel change whatever started it (a
request, a lease expiry, a failed heal's retry, start-up recovery, shutdown) - who, what, the
verdict, the change and its undo. Changes and refusals are fsynced before the answer leaves.

Bounded: a string field longer than FIELD_MAX is cut, with the length and the SHA-256 of the
whole, so a 4 MB request writes a few hundred bytes; refusals of one caller beyond
REFUSALS_PER_MINUTE are counted, not written, and the count is written with the next line
allowed. Calls that change nothing and come often (Health, SyncClock: a monitoring check, a
clock sync) are counted, one line per caller and method a minute, not a line each. The file is
rotated at max_bytes, keeping `keep` old ones (audit.jsonl.1 ... .N), so it cannot fill its disk.
A write that fails never fails the call: the error is logged and kept for Health, which says
DEGRADED (the change was made; the client still gets its fault id). Never holds key material.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from faultline.agent.domain.trust import NOFOLLOW

log = logging.getLogger(__name__)

FIELD_MAX = 512          # characters of one string field
REFUSALS_PER_MINUTE = 20  # audit lines per refused caller per minute; the rest are counted
MAX_BYTES = 16 << 20     # rotate the audit log past this size
KEEP = 5                 # rotated files kept
COUNTED = frozenset({"Health", "SyncClock"})  # counted per minute, not written per call


def bounded(value: Any, limit: int = FIELD_MAX) -> Any:
    """`value` with every string longer than `limit` cut to it, plus its length and hash."""
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        digest = hashlib.sha256(value.encode(errors="replace")).hexdigest()[:16]
        return f"{value[:limit]}... [{len(value)} chars, sha256 {digest}]"
    if isinstance(value, dict):
        return {bounded(k, 64): bounded(v, limit) for k, v in list(value.items())[:64]}
    if isinstance(value, list | tuple):
        items = [bounded(v, limit) for v in value[:64]]
        return items + ([f"... [{len(value)} items]"] if len(value) > 64 else [])
    return value


class AuditLog:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._counts: dict[tuple[str, str, str], int] = {}  # (who, method, verdict) -> calls this minute
        self._minute = int(time.time() // 60)
        self._lock = threading.Lock()
        self.last_error = ""  # the last write failure, for Health; "" once a write succeeds again
        self._refused: dict[str, tuple[int, int, int]] = {}  # who -> (minute, written, suppressed)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._failed(e)

    def write(self, who: str, method: str, verdict: str, sync: bool = False, **fields: Any) -> None:
        """sync: fsync before returning (changes and refusals); reads are only appended."""
        record = {"t_ns": time.time_ns(), "who": bounded(who, 256), "method": method, "verdict": verdict,
                  **{k: bounded(v) for k, v in fields.items()}}
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self._lock:
            self._append(self._flush_counts() + line, sync)

    def count(self, who: str, method: str, verdict: str) -> None:
        """A call of a COUNTED method: one line per caller, method and verdict a minute, with the count."""
        with self._lock:
            key = (bounded(who, 256), method, verdict)
            self._counts[key] = self._counts.get(key, 0) + 1
            if int(time.time() // 60) != self._minute:
                self._append(self._flush_counts(), False)

    def _flush_counts(self) -> str:
        """The lines of the minute's counts (written before anything newer); "" when none."""
        minute, self._minute = self._minute, int(time.time() // 60)
        lines = "".join(json.dumps({"t_ns": time.time_ns(), "who": who, "method": method, "verdict": verdict,
                                    "calls": n, "minute_utc": minute * 60}, sort_keys=True) + "\n"
                        for (who, method, verdict), n in sorted(self._counts.items()))
        self._counts.clear()
        return lines

    def flush(self) -> None:
        """Write the counts now (at shutdown)."""
        with self._lock:
            if self._counts:
                self._append(self._flush_counts(), True)

    def _append(self, text: str, sync: bool) -> None:
        if not text:
            return
        try:
            self._rotate_for(len(text))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o600)
            try:
                data, done = text.encode(), 0
                while done < len(data):
                    done += os.write(fd, data[done:])
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self.last_error = ""
        except OSError as e:
            self._failed(e)

    def _rotate_for(self, size: int) -> None:
        try:
            if os.lstat(self.path).st_size + size <= self.max_bytes:
                return
        except FileNotFoundError:
            return
        for n in range(self.keep, 0, -1):  # .keep is dropped, the rest move up one
            older = self.path.with_name(f"{self.path.name}.{n}")
            if n == self.keep:
                older.unlink(missing_ok=True)
            else:
                newer = self.path.with_name(f"{self.path.name}.{n + 1}")
                if os.path.lexists(older):
                    os.rename(older, newer)
        if self.keep:
            os.rename(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()

    def refusal(self, who: str, method: str, verdict: str, **fields: Any) -> None:
        """A refused caller's line, rate-limited per caller: a flood of refusals cannot fill the disk."""
        minute = int(time.monotonic() // 60)
        with self._lock:
            at, written, suppressed = self._refused.get(who, (minute, 0, 0))
            if at != minute:
                at, written = minute, 0
            if written >= REFUSALS_PER_MINUTE:
                self._refused[who] = (at, written, suppressed + 1)
                return
            self._refused[who] = (at, written + 1, 0)
            if len(self._refused) > 10_000:  # many callers: forget the oldest minutes
                self._refused = {k: v for k, v in self._refused.items() if v[0] == minute}
        if suppressed:
            fields["suppressed_before"] = f"{suppressed} refusal(s) of this caller not written (rate limit)"
        self.write(who, method, verdict, sync=True, **fields)

    def _failed(self, e: OSError) -> None:
        self.last_error = f"audit log {self.path}: {e}"
        log.error("%s (the change itself was made)", self.last_error)
