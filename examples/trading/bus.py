"""The message broker behind a small interface: publish to a stream, read it as a consumer group.

The lab runs Redis streams (Debian's redis-server). Kafka is not packaged for Debian, so it is
not in the lab; a Kafka deployment plugs in by implementing Bus (topics for streams, a
consumer group for the group) and naming it in `connect`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any, Protocol

import redis


class Bus(Protocol):
    def publish(self, stream: str, message: dict[str, Any]) -> None: ...
    def read(self, group: str, consumer: str, streams: list[str], block_ms: int) -> list[tuple[str, str, dict]]: ...
    def ack(self, stream: str, group: str, ids: list[str]) -> None: ...
    def lag(self, stream: str, group: str) -> int: ...


class BusDown(Exception):
    """The broker cannot be reached now; callers keep their messages and retry."""


class RedisBus:
    def __init__(self, host: str, port: int = 6379, timeout_s: float = 1.0) -> None:
        self._r = redis.Redis(host=host, port=port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._groups: set[tuple[str, str]] = set()

    def _do(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self._groups.clear()  # a restarted broker may have lost them: make sure again
            raise BusDown(str(e)) from None

    def publish(self, stream: str, message: dict[str, Any]) -> None:
        self._do(self._r.xadd, stream, {"m": json.dumps(message)})

    def _group(self, stream: str, group: str) -> None:
        if (stream, group) in self._groups:
            return
        try:
            self._do(self._r.xgroup_create, stream, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add((stream, group))

    def read(self, group: str, consumer: str, streams: list[str], block_ms: int) -> list[tuple[str, str, dict]]:
        for s in streams:
            self._group(s, group)
        got = self._do(self._r.xreadgroup, group, consumer, {s: ">" for s in streams}, count=500, block=block_ms)
        return [(s.decode(), i.decode(), json.loads(f[b"m"])) for s, items in got or [] for i, f in items]

    def ack(self, stream: str, group: str, ids: list[str]) -> None:
        if ids:
            self._do(self._r.xack, stream, group, *ids)

    def lag(self, stream: str, group: str) -> int:
        """Entries not yet delivered to the group plus delivered but not acknowledged."""
        for g in self._do(self._r.xinfo_groups, stream):
            if g["name"].decode() == group:
                return int(g.get("lag") or 0) + int(g.get("pending") or 0)
        return 0


def connect(address: str) -> Bus:
    host, _, port = address.rpartition(":")
    return RedisBus(host, int(port))


class Outbox:
    """What a publisher owes the broker, in order: kept while the broker is unreachable and sent
    when it is back. The peak is the buffering the suite reports (outbox_max)."""

    def __init__(self, bus: Bus, limit: int = 200_000) -> None:
        self.bus = bus
        self._q: deque[tuple[str, dict[str, Any]]] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self.counts = {"outbox_max": 0, "bus_down": 0}

    def put(self, stream: str, message: dict[str, Any]) -> None:
        with self._lock:
            self._q.append((stream, message))
            self.counts["outbox_max"] = max(self.counts["outbox_max"], len(self._q))

    def flush(self) -> None:
        """Send what waits, in order; stop at the first failure (the rest waits for the next try)."""
        while True:
            with self._lock:
                if not self._q:
                    return
                stream, message = self._q[0]
            try:
                self.bus.publish(stream, message)
            except BusDown:
                self.counts["bus_down"] += 1
                return
            with self._lock:
                self._q.popleft()

    def run(self, stop: threading.Event, every_s: float = 0.005) -> None:
        """The publisher thread: the producer never waits for the broker."""
        while not stop.is_set():
            self.flush()
            stop.wait(every_s)
