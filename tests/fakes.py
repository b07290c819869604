"""Fakes of the kernel side (a mechanism, the probe program) for testing without root."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from agent.domain.events import EventKind, TcpEvent, WatchFilter
from agent.domain.spec import Counters, FaultKind, FaultSpec, Mechanism


class FakeMechanism:
    mechanism = Mechanism.EBPF_TC
    kinds = (FaultKind.DISCONNECT, FaultKind.LOSS)

    def __init__(self) -> None:
        self.installed: dict[str, tuple[FaultSpec, int]] = {}
        self.log: list[tuple[str, str]] = []

    def refuses(self, spec: FaultSpec) -> str:
        return spec.ebpf_cannot

    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int) -> None:
        self.installed[fault_id] = (spec, ifindex)
        self.log.append(("apply", fault_id))

    def heal(self, fault_id: str) -> Counters:
        del self.installed[fault_id]
        self.log.append(("heal", fault_id))
        return Counters(10, 3)

    def counters(self, fault_id: str) -> Counters:
        return Counters(5, 1)


LINKS = {"lab0": 2, "eth1": 3, "lo": 1}


class FakeProbe:
    """Stands in for TcpWatchProgram: tests push (mask-less) events; the fake applies each
    slot's filter the way the kernel program does and hands them to the hub's poll."""

    transport = "fake buffer"
    slots = 4

    def __init__(self, kinds: Iterable[EventKind] = EventKind) -> None:
        self._kinds = frozenset(kinds)
        self._attached: frozenset[EventKind] = frozenset()
        self.filters: dict[int, WatchFilter] = {}
        self.pending: list[TcpEvent] = []
        self.lost = 0
        self.matched = 0
        self.rtt_interval_ns = -1
        self.local: list[object] = []
        self._lock = threading.Lock()
        self.polled = threading.Event()

    def available(self) -> frozenset[EventKind]:
        return self._kinds

    def attach(self, kinds: Iterable[EventKind]) -> None:
        self._attached = frozenset(kinds) & self._kinds

    def attached(self) -> frozenset[EventKind]:
        return self._attached

    def set_watcher(self, slot: int, f: WatchFilter) -> None:
        self.filters[slot] = f

    def clear_watcher(self, slot: int) -> None:
        self.filters.pop(slot, None)

    def set_rtt_interval(self, ns: int) -> None:
        self.rtt_interval_ns = ns

    def set_local_addrs(self, addrs: Iterable[object]) -> None:
        self.local = list(addrs)

    def push(self, *events: TcpEvent) -> None:
        with self._lock:
            self.pending.extend(events)

    def poll(self, timeout_ms: int, offset_ns: int, deliver: Callable[[int, TcpEvent], None]) -> None:
        with self._lock:
            events, self.pending = self.pending, []
        for ev in events:
            mask = sum(1 << s for s, f in list(self.filters.items())
                       if ev.kind in f.kinds and ev.kind in self._attached and f.matches(ev.flow))
            if mask:
                self.matched += 1
                deliver(mask, ev)
        self.polled.set()
        if not events:
            threading.Event().wait(min(timeout_ms, 20) / 1000)

    def totals(self) -> tuple[int, int]:
        return self.matched, self.lost
