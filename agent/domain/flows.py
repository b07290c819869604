"""Per-connection aggregates of watched events, for the summary RPC.

A connection is keyed by its kernel socket while it lives (its first event, CLOSE ->
SYN_SENT, comes before the kernel picks the local port) and by its 4-tuple for events
without a socket (a reset sent for a packet no socket owns).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from faultline.agent.domain.clock import Stamp
from faultline.agent.domain.events import EventKind, Flow, TcpEvent, WatchFilter

CLOSE = 7
MAX_FLOWS = 4096        # oldest forgotten first
MAX_TRANSITIONS = 32    # per flow: the first ones (the handshake) and the last ones are kept
MAX_RTT_SAMPLES = 4096  # per flow: the most recent


@dataclass
class _Record:
    flow: Flow
    first_seen: Stamp
    last_seen: Stamp
    state: int = 0
    transitions: list[tuple[Stamp, int, int]] = field(default_factory=list)
    retransmits: int = 0
    first_retransmit: Stamp | None = None
    last_retransmit: Stamp | None = None
    resets_sent: int = 0
    resets_received: int = 0
    rtt_us: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class FlowSummary:
    flow: Flow
    first_seen: Stamp
    last_seen: Stamp
    state: int                                   # last known (0: never seen changing state)
    transitions: tuple[tuple[Stamp, int, int], ...]
    retransmits: int
    first_retransmit: Stamp | None
    last_retransmit: Stamp | None
    resets_sent: int
    resets_received: int
    rtt_samples: int
    rtt_p50_us: int
    rtt_p90_us: int
    rtt_p99_us: int


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile; 0 for no values."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil
    return sorted_values[int(rank) - 1]


class FlowTable:
    def __init__(self, max_flows: int = MAX_FLOWS) -> None:
        self._max = max_flows
        self._records: OrderedDict[object, _Record] = OrderedDict()
        self._live: dict[int, object] = {}  # socket -> key of its record
        self._by_flow: dict[Flow, object] = {}  # 4-tuple of a live socket -> key of its record
        self._next = 0
        self._lock = threading.Lock()

    def record(self, ev: TcpEvent) -> None:
        with self._lock:
            # No socket named (an RTT sample on kernels whose tcp_probe lacks it, a reset for
            # a packet no socket owns): the live connection on that 4-tuple, if any.
            key = self._live.get(ev.sock) if ev.sock else self._by_flow.get(ev.flow, ("flow", ev.flow))
            rec = self._records.get(key) if key is not None else None
            if rec is None:
                key = key if key is not None else self._new_key()
                rec = _Record(ev.flow, ev.at, ev.at)
                self._records[key] = rec
                if ev.sock:
                    self._live[ev.sock] = key
                while len(self._records) > self._max:
                    old_key, old = self._records.popitem(last=False)
                    if self._by_flow.get(old.flow) == old_key:
                        del self._by_flow[old.flow]
            else:
                self._records.move_to_end(key)
            if ev.flow.local_port:
                rec.flow = ev.flow
                if ev.sock:
                    self._by_flow[ev.flow] = key
            rec.last_seen = ev.at
            self._apply(rec, ev)
            if ev.kind is EventKind.STATE and ev.new_state == CLOSE and ev.sock:
                self._live.pop(ev.sock, None)  # its memory may hold the next socket
                if self._by_flow.get(rec.flow) == key:
                    del self._by_flow[rec.flow]

    def _new_key(self) -> int:
        self._next += 1
        return self._next

    @staticmethod
    def _apply(rec: _Record, ev: TcpEvent) -> None:
        if ev.kind is EventKind.STATE:
            rec.state = ev.new_state
            if len(rec.transitions) >= MAX_TRANSITIONS:
                del rec.transitions[MAX_TRANSITIONS // 2]
            rec.transitions.append((ev.at, ev.old_state, ev.new_state))
        elif ev.kind is EventKind.RETRANSMIT:
            rec.retransmits += 1
            rec.first_retransmit = rec.first_retransmit or ev.at
            rec.last_retransmit = ev.at
        elif ev.kind is EventKind.RESET_SENT:
            rec.resets_sent += 1
        elif ev.kind is EventKind.RESET_RECEIVED:
            rec.resets_received += 1
        elif ev.kind is EventKind.RTT:
            if len(rec.rtt_us) >= MAX_RTT_SAMPLES:
                del rec.rtt_us[: MAX_RTT_SAMPLES // 4]
            rec.rtt_us.append(ev.srtt_us)

    def summary(self, f: WatchFilter, since_realtime_ns: int = 0) -> list[FlowSummary]:
        """Flows matching f that saw an event at or after since, oldest first."""
        out = []
        with self._lock:
            records = [r for r in self._records.values()
                       if r.last_seen.realtime_ns >= since_realtime_ns and f.matches(r.flow)]
            snapshot = [(r, sorted(r.rtt_us), tuple(r.transitions)) for r in records]
        for r, rtt, transitions in snapshot:
            out.append(FlowSummary(
                flow=r.flow, first_seen=r.first_seen, last_seen=r.last_seen, state=r.state,
                transitions=transitions, retransmits=r.retransmits, first_retransmit=r.first_retransmit,
                last_retransmit=r.last_retransmit, resets_sent=r.resets_sent, resets_received=r.resets_received,
                rtt_samples=len(rtt), rtt_p50_us=percentile(rtt, 50), rtt_p90_us=percentile(rtt, 90),
                rtt_p99_us=percentile(rtt, 99),
            ))
        return sorted(out, key=lambda s: s.first_seen.monotonic_ns)
