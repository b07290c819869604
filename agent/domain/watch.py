"""Watch streams over one set of kernel probes.

Each watcher owns a slot of the probe program: its filter is in the kernel, and every
event arrives with the mask of the slots it matched, so fan-out here is a lookup, not a
filter. The probes are attached while at least one watcher exists, and only those that
some watcher asked for. One thread polls the kernel buffer while anyone watches.

Nothing is lost silently: events the kernel buffer had no room for (counted in the
kernel) and events a slow watcher's queue had no room for (counted here) reach the
watcher as Lost notices, which never queue behind events.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from faultline.agent.domain import clock
from faultline.agent.domain.deferred import Deferred
from faultline.agent.domain.errors import Exhausted, FailedPrecondition
from faultline.agent.domain.events import (
    EventKind,
    FaultCounters,
    Lost,
    StreamItem,
    TcpEvent,
    WatchFilter,
    Watching,
)
from faultline.agent.domain.flows import FlowSummary, FlowTable
from faultline.agent.domain.spec import Counters

log = logging.getLogger(__name__)

POLL_MS = 100
OFFSET_EVERY_S = 1.0
ADDRS_EVERY_S = 5.0
COUNTERS_EVERY_S = 0.5
QUEUE_SIZE = 100_000  # per watcher: 10 s of a busy host


class Probe(Protocol):
    """The kernel side (agent/kernel/tcp_watch.py), as the hub uses it."""

    transport: str
    slots: int

    def available(self) -> frozenset[EventKind]: ...
    def attach(self, kinds: Iterable[EventKind]) -> None: ...
    def attached(self) -> frozenset[EventKind]: ...
    def set_watcher(self, slot: int, f: WatchFilter) -> None: ...
    def clear_watcher(self, slot: int) -> None: ...
    def set_rtt_interval(self, ns: int) -> None: ...
    def set_local_addrs(self, addrs: Iterable[IPv4Address | IPv6Address]) -> None: ...
    def poll(self, timeout_ms: int, offset_ns: int, deliver: Callable[[int, TcpEvent], None]) -> None: ...
    def totals(self) -> tuple[int, int]: ...


@dataclass(eq=False)
class Watcher:
    slot: int
    filter: WatchFilter
    queue: queue.Queue[TcpEvent] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    notices: deque[StreamItem] = field(default_factory=deque)  # ahead of events, never dropped
    received: int = 0            # events handed to this watcher
    dropped: int = 0             # events its queue had no room for
    dropped_reported: int = 0
    closed: threading.Event = field(default_factory=threading.Event)

    def next(self, timeout_s: float) -> StreamItem | None:
        """The next item, or None after timeout_s or once closed."""
        if self.dropped != self.dropped_reported:
            n, self.dropped_reported = self.dropped - self.dropped_reported, self.dropped
            return Lost(clock.now(), "agent queue (watcher too slow)", n, self.dropped)
        if self.notices:
            return self.notices.popleft()
        if self.closed.is_set():
            return None
        try:
            return self.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def cancel(self) -> None:
        self.closed.set()


class WatchHub:
    def __init__(self, probe: Probe | Deferred[Probe] | None, unavailable: str,
                 local_addrs: Callable[[], list[IPv4Address | IPv6Address]],
                 fault_counters: Callable[[], list[tuple[str, Counters]]]) -> None:
        # The probe program compiles in the background at agent start: resolved at the first watch.
        self._pending = probe if isinstance(probe, Deferred) else None
        self.probe: Probe | None = None if isinstance(probe, Deferred) else probe
        self.unavailable = unavailable
        self._local_addrs = local_addrs
        self._fault_counters = fault_counters
        self.flows = FlowTable()
        self._lock = threading.Lock()
        self._watchers: dict[int, Watcher] = {}
        self._draining: set[int] = set()  # closed slots whose events may still be in the buffer
        self._thread: threading.Thread | None = None
        self._offset = clock.measure_offset()
        self._addrs: tuple[str, ...] = ()
        self._lost_seen = self.probe.totals()[1] if self.probe else 0
        self._counters_seen: dict[str, Counters] = {}

    # -- watchers ----------------------------------------------------------
    def _resolve(self, wait_s: float) -> Probe | None:
        """The probe, waiting up to wait_s for its compile (Unavailable if it is still compiling)."""
        if self._pending is not None:
            try:
                probe = self._pending.get(wait_s)
            except FailedPrecondition as e:
                self.unavailable, self._pending = str(e), None
                return None
            with self._lock:
                if self.probe is None:
                    self.probe, self._lost_seen = probe, probe.totals()[1]
                self._pending = None
        return self.probe

    def open(self, f: WatchFilter, wait_s: float = 0.0) -> Watcher:
        probe = self._resolve(wait_s)
        if probe is None:
            raise FailedPrecondition(f"TCP observation unavailable: {self.unavailable}")
        if not f.kinds & probe.available():
            raise FailedPrecondition(
                f"filter.kinds: none of {sorted(k.name for k in f.kinds)} can be observed on this kernel "
                f"(available: {sorted(k.name for k in probe.available())})")
        with self._lock:
            slot = next((s for s in range(probe.slots) if s not in self._watchers and s not in self._draining),
                        None)
            if slot is None:
                raise Exhausted(f"all {probe.slots} watch slots are in use; close a watch stream first")
            if not self._watchers:
                self._offset = clock.measure_offset()
                self._refresh_addrs()
            self._counters_seen.clear()  # the new watcher gets every fault's counters once
            w = Watcher(slot, f)
            self._watchers[slot] = w
            try:
                probe.set_watcher(slot, f)
                self._configure()
            except Exception:
                # The kernel refused (a map write, an attach): leave it as the others had it.
                del self._watchers[slot]
                probe.clear_watcher(slot)
                self._configure()
                raise
            w.notices.append(Watching(clock.now(), probe.transport,
                                      tuple(k.name for k in sorted(probe.attached(), key=lambda k: k.value)),
                                      self._addrs, self._offset.uncertainty_ns))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watch-poll", daemon=True)
                self._thread.start()
        return w

    def close_watcher(self, w: Watcher) -> None:
        w.cancel()
        with self._lock:
            if self._watchers.get(w.slot) is not w:
                return
            del self._watchers[w.slot]
            self._draining.add(w.slot)
            assert self.probe is not None
            self.probe.clear_watcher(w.slot)
            self._configure()  # the last watcher gone: every probe detached here

    def _configure(self) -> None:
        """Attach the probes the remaining watchers want; RTT as often as the most eager asks."""
        assert self.probe is not None
        kinds = set().union(*(w.filter.kinds for w in self._watchers.values()))
        rtt = [w.filter.rtt_interval_ms for w in self._watchers.values() if EventKind.RTT in w.filter.kinds]
        self.probe.set_rtt_interval(min(rtt, default=0) * 1_000_000)
        self.probe.attach(kinds)

    def watching(self) -> int:
        with self._lock:
            return len(self._watchers)

    def totals(self) -> tuple[int, int]:
        """(events matched, events lost in the kernel buffer) since the probes were loaded."""
        return self.probe.totals() if self.probe else (0, 0)

    def summary(self, f: WatchFilter, since_realtime_ns: int = 0) -> list[FlowSummary]:
        return self.flows.summary(f, since_realtime_ns)

    def close(self) -> None:
        """End every stream and detach (agent shutdown)."""
        with self._lock:
            watchers = list(self._watchers.values())
        for w in watchers:
            self.close_watcher(w)
        t = self._thread
        if t is not None:
            t.join(timeout=2)

    # -- the poll thread ---------------------------------------------------
    def _deliver(self, mask: int, ev: TcpEvent) -> None:
        self.flows.record(ev)
        slot = 0
        while mask:
            if mask & 1:
                w = self._watchers.get(slot)  # a draining slot has no watcher: its events go nowhere
                if w is not None:
                    try:
                        w.queue.put_nowait(ev)
                        w.received += 1
                    except queue.Full:
                        w.dropped += 1
            mask >>= 1
            slot += 1

    def _run(self) -> None:
        assert self.probe is not None
        last = {"offset": time.monotonic(), "addrs": time.monotonic(), "counters": 0.0}
        while True:
            with self._lock:
                draining = set(self._draining)
                if not self._watchers:
                    # Last drain under the lock: a new watcher's thread cannot poll alongside.
                    self._poll(0)
                    self._draining.clear()
                    self._thread = None
                    return
            self._poll(POLL_MS)
            with self._lock:
                # Every event of these slots emitted before they closed has now been read.
                self._draining -= draining
            self._housekeeping(last)

    def _poll(self, timeout_ms: int) -> None:
        assert self.probe is not None
        try:
            self.probe.poll(timeout_ms, self._offset.ns, self._deliver)
        except Exception:
            log.exception("watch: polling the kernel buffer failed")
            time.sleep(POLL_MS / 1000)

    def _housekeeping(self, last: dict[str, float]) -> None:
        now = time.monotonic()
        if now - last["offset"] >= OFFSET_EVERY_S:
            self._offset, last["offset"] = clock.measure_offset(), now
        if now - last["addrs"] >= ADDRS_EVERY_S:
            with self._lock:
                self._refresh_addrs()
            last["addrs"] = now
        assert self.probe is not None
        lost = self.probe.totals()[1]
        if lost != self._lost_seen:
            n, self._lost_seen = lost - self._lost_seen, lost
            self._notify(lambda w: True, Lost(clock.now(), "kernel buffer (full)", n, lost))
        if now - last["counters"] >= COUNTERS_EVERY_S:
            last["counters"] = now
            stamp = clock.now()
            for fault_id, c in self._fault_counters():
                if self._counters_seen.get(fault_id) != c:
                    self._counters_seen[fault_id] = c
                    self._notify(lambda w: w.filter.fault_counters, FaultCounters(stamp, fault_id, c))

    def _notify(self, want: Callable[[Watcher], bool], item: StreamItem) -> None:
        for w in list(self._watchers.values()):
            if want(w):
                w.notices.append(item)

    def _refresh_addrs(self) -> None:
        assert self.probe is not None
        addrs = self._local_addrs()
        self.probe.set_local_addrs(addrs)
        self._addrs = tuple(str(a) for a in addrs)
