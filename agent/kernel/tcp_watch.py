"""The TCP observer (tcp_watch.c) compiled with bcc, attached only while someone watches.

One compile at agent start (0.5 s here, ~30 s under TCG): each probe is verified then, so
Capabilities can say which ones work. bcc attaches TRACEPOINT_PROBE functions as it loads
them; they are detached at once and attached again on demand, per kind of event, so that
a host nobody watches pays nothing (tcp_probe fires on every received segment).
Attachments are file descriptors of this process: they vanish with it, so the observer
needs no journal.
"""

from __future__ import annotations

import ctypes as ct
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from faultline.agent.domain.clock import Stamp
from faultline.agent.domain.errors import FailedPrecondition
from faultline.agent.domain.events import EventKind, Flow, TcpEvent, WatchFilter
from faultline.agent.kernel.ebpf import CidrC

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("tcp_watch.c")
MAX_WATCHERS = 16
MAX_CIDRS = 8
MAX_PORTS = 8
RINGBUF_PAGES = 1024  # 4 MiB: ~44,000 events of 96 bytes, 2 s at 20,000/s, between two polls
TRACEFS = Path("/sys/kernel/tracing")

# kind -> (tracepoint, the -D that compiles its probe in)
PROBES: dict[EventKind, tuple[str, str]] = {
    EventKind.STATE: ("sock:inet_sock_set_state", "WANT_STATE"),
    EventKind.RETRANSMIT: ("tcp:tcp_retransmit_skb", "WANT_RETRANSMIT"),
    EventKind.RESET_SENT: ("tcp:tcp_send_reset", "WANT_RESET_SENT"),
    EventKind.RESET_RECEIVED: ("tcp:tcp_receive_reset", "WANT_RESET_RECEIVED"),
    EventKind.RTT: ("tcp:tcp_probe", "WANT_RTT"),
}


class AddrKeyC(ct.Structure):
    _fields_ = [("addr", ct.c_uint32 * 4), ("family", ct.c_uint8), ("pad", ct.c_uint8 * 3)]


class WatcherC(ct.Structure):
    _fields_ = [
        ("kinds", ct.c_uint32),
        ("n_ports", ct.c_uint8),
        ("n_cidrs", ct.c_uint8),
        ("pad", ct.c_uint8 * 2),
        ("ports", ct.c_uint16 * MAX_PORTS),
        ("cidrs", CidrC * MAX_CIDRS),
    ]


class EventC(ct.Structure):
    _fields_ = [
        ("ts_ns", ct.c_uint64),
        ("sock", ct.c_uint64),
        ("watchers", ct.c_uint32),
        ("pid", ct.c_uint32),
        ("laddr", ct.c_uint8 * 16),
        ("raddr", ct.c_uint8 * 16),
        ("lport", ct.c_uint16),
        ("rport", ct.c_uint16),
        ("family", ct.c_uint8),
        ("kind", ct.c_uint8),
        ("old_state", ct.c_uint8),
        ("new_state", ct.c_uint8),
        ("srtt_us", ct.c_uint32),
        ("snd_cwnd", ct.c_uint32),
        ("comm", ct.c_char * 16),
    ]


@dataclass(frozen=True)
class ProbeStatus:
    kind: EventKind
    tracepoint: str
    available: bool
    reason: str


def watcher_c(f: WatchFilter) -> WatcherC:
    w = WatcherC()
    w.kinds = sum(1 << k.value for k in f.kinds)
    w.n_ports = len(f.ports)
    for i, p in enumerate(f.ports):
        w.ports[i] = p
    w.n_cidrs = len(f.peers)
    for i, net in enumerate(f.peers):
        w.cidrs[i].addr[:] = struct.unpack("=4I", net.network_address.packed.ljust(16, b"\0"))
        w.cidrs[i].mask[:] = struct.unpack("=4I", net.netmask.packed.ljust(16, b"\0"))
        w.cidrs[i].family = net.version
    return w


def addr_key(addr: IPv4Address | IPv6Address) -> AddrKeyC:
    k = AddrKeyC()
    k.addr[:] = struct.unpack("=4I", addr.packed.ljust(16, b"\0"))
    k.family = addr.version
    return k


def _addr(family: int, raw: ct.Array) -> str:
    b = bytes(raw)
    return socket.inet_ntop(socket.AF_INET, b[:4]) if family == 4 else socket.inet_ntop(socket.AF_INET6, b)


def decode(e: EventC, offset_ns: int) -> TcpEvent:
    return TcpEvent(
        kind=EventKind(e.kind), at=Stamp(e.ts_ns + offset_ns, e.ts_ns),
        flow=Flow(_addr(e.family, e.laddr), e.lport, _addr(e.family, e.raddr), e.rport),
        sock=e.sock, old_state=e.old_state, new_state=e.new_state, pid=e.pid,
        comm=e.comm.decode(errors="replace"), srtt_us=e.srtt_us, snd_cwnd=e.snd_cwnd,
    )


def _has_field(tracefs: Path, event: str, field: str) -> bool:
    """Tracepoint formats change between kernels; the probe compiles for the one running."""
    fmt = tracefs / "events" / event / "format"
    return fmt.exists() and f" {field};" in fmt.read_text()


class TcpWatchProgram:
    """The compiled observer and its maps. Thread use: poll() on one thread; the rest under the hub's lock."""

    slots = MAX_WATCHERS

    def __init__(self, tracefs: Path = TRACEFS, ring_buffer: bool = True) -> None:
        try:
            from bcc import BPF
        except ImportError as e:
            raise FailedPrecondition("bcc (python3-bpfcc) is not importable: no TCP observation") from e
        self._BPF = BPF
        present = {k: (tracefs / "events" / tp.replace(":", "/")).is_dir() for k, (tp, _) in PROBES.items()}
        if not any(present.values()):
            raise FailedPrecondition(f"none of the TCP tracepoints is in {tracefs}/events (tracefs mounted?)")
        flags = [f"-DMAX_WATCHERS={MAX_WATCHERS}", f"-DMAX_CIDRS={MAX_CIDRS}", f"-DMAX_PORTS={MAX_PORTS}",
                 f"-DRINGBUF_PAGES={RINGBUF_PAGES}"]
        flags += [f"-D{PROBES[k][1]}" for k, ok in present.items() if ok]
        if _has_field(tracefs, "tcp/tcp_send_reset", "saddr[28]"):
            flags.append("-DSEND_RESET_SOCKADDR")  # 6.10+: sockaddrs and a reason
        if not _has_field(tracefs, "tcp/tcp_probe", "skaddr"):
            flags.append("-DTCP_PROBE_NO_SKADDR")
        self.status: dict[EventKind, ProbeStatus] = {}
        try:
            self._bpf, self.transport = self._compile(flags, ring_buffer)
        except FailedPrecondition:
            # One probe that does not compile must not cost the others: find it, leave it out.
            for kind, ok in present.items():
                if ok and not self._compiles([f for f in flags if not f.startswith("-DWANT_")] + [
                        f"-D{PROBES[kind][1]}"], ring_buffer):
                    present[kind] = False
                    self.status[kind] = ProbeStatus(kind, PROBES[kind][0], False,
                                                    "did not compile against this kernel's tracepoint format "
                                                    "(the clang error is in the agent's log)")
            flags = [f for f in flags if not f.startswith("-DWANT_") or
                     any(f == f"-D{PROBES[k][1]}" for k, ok in present.items() if ok)]
            self._bpf, self.transport = self._compile(flags, ring_buffer)
        self._fns: dict[EventKind, bytes] = {}
        for kind, (tp, _) in PROBES.items():
            if kind in self.status:
                continue
            if not present[kind]:
                self.status[kind] = ProbeStatus(kind, tp, False, f"tracepoint {tp} absent in this kernel")
                continue
            fn = ("tracepoint__" + tp.replace(":", "__")).encode()  # bcc wants bytes
            try:
                self._bpf.load_func(fn, BPF.TRACEPOINT)  # verified here, not at first watch
            except Exception as e:
                self.status[kind] = ProbeStatus(kind, tp, False, f"did not verify: {e}")
                continue
            self._fns[kind] = fn
            self.status[kind] = ProbeStatus(kind, tp, True, f"compiled and verified; {self.transport}")
        for tp in list(self._bpf.tracepoint_fds):
            self._bpf.detach_tracepoint(tp)  # bcc attached them on load: nobody watches yet
        self._attached: set[EventKind] = set()
        self._watchers = self._bpf[b"watchers"]
        if ct.sizeof(self._watchers.Leaf) != ct.sizeof(WatcherC):
            raise FailedPrecondition(f"struct watcher is {ct.sizeof(self._watchers.Leaf)} bytes in C, "
                                     f"{ct.sizeof(WatcherC)} in Python")
        self._active = self._bpf[b"active"]
        self._mask = 0
        self._local = self._bpf[b"local_addrs"]
        self._stats = self._bpf[b"stats"]
        self._deliver: Callable[[int, TcpEvent], None] = lambda _m, _e: None
        self._offset_ns = 0
        self._open_buffer()

    def _compiles(self, flags: list[str], ring_buffer: bool) -> bool:
        try:
            bpf, _ = self._compile(flags, ring_buffer)
        except FailedPrecondition:
            return False
        bpf.cleanup()  # type: ignore[attr-defined]
        return True

    def _compile(self, flags: list[str], ring_buffer: bool) -> tuple[object, str]:
        BPF = self._BPF
        errors = []
        # Ring buffer (5.8+): one buffer shared by all CPUs, in order; perf buffer otherwise.
        choices = [(["-DUSE_RINGBUF"], "ring buffer")] if ring_buffer else []
        for extra, transport in (*choices, ([], "perf buffer")):
            try:
                return BPF(src_file=str(SOURCE).encode(), cflags=flags + extra), transport
            except Exception as e:
                errors.append(f"{transport}: {e}")
        raise FailedPrecondition("tcp_watch.c did not compile: " + "; ".join(errors))

    # -- buffer ------------------------------------------------------------
    def _open_buffer(self) -> None:
        def on_event(_ctx: object, data: int, _size: int) -> int:
            e = ct.cast(data, ct.POINTER(EventC)).contents
            self._deliver(e.watchers, decode(e, self._offset_ns))
            return 0

        events = self._bpf[b"events"]
        if self.transport == "ring buffer":
            events.open_ring_buffer(on_event)
        else:
            # Lost samples are also counted in the kernel (stats[1]); bcc's count is not needed.
            events.open_perf_buffer(lambda cpu, data, size: on_event(None, data, size), page_cnt=64,
                                    lost_cb=lambda _n: None)
        self._on_event = on_event  # ctypes callbacks must outlive the buffer

    def poll(self, timeout_ms: int, offset_ns: int, deliver: Callable[[int, TcpEvent], None]) -> None:
        """Hand every event waiting (or arriving within timeout_ms) to deliver(watcher mask, event)."""
        self._deliver, self._offset_ns = deliver, offset_ns
        if self.transport == "ring buffer":
            self._bpf.ring_buffer_poll(timeout_ms)
        else:
            self._bpf.perf_buffer_poll(timeout_ms)

    # -- maps --------------------------------------------------------------
    def available(self) -> frozenset[EventKind]:
        return frozenset(self._fns)

    def attach(self, kinds: Iterable[EventKind]) -> None:
        """Attach exactly the probes of `kinds` (those that verified)."""
        want = set(kinds) & set(self._fns)
        for kind in sorted(self._attached - want, key=lambda k: k.value):
            self._bpf.detach_tracepoint(PROBES[kind][0].encode())
            self._attached.discard(kind)
        for kind in sorted(want - self._attached, key=lambda k: k.value):
            self._bpf.attach_tracepoint(tp=PROBES[kind][0].encode(), fn_name=self._fns[kind])
            self._attached.add(kind)

    def attached(self) -> frozenset[EventKind]:
        return frozenset(self._attached)

    def set_watcher(self, slot: int, f: WatchFilter) -> None:
        self._watchers[ct.c_int(slot)] = watcher_c(f)
        self._mask |= 1 << slot  # the slot is complete before its bit makes it visible
        self._active[ct.c_int(0)] = ct.c_uint32(self._mask)

    def clear_watcher(self, slot: int) -> None:
        self._mask &= ~(1 << slot)
        self._active[ct.c_int(0)] = ct.c_uint32(self._mask)

    def set_rtt_interval(self, ns: int) -> None:
        self._bpf[b"rtt_interval"][ct.c_int(0)] = ct.c_uint64(ns)

    def set_local_addrs(self, addrs: Iterable[IPv4Address | IPv6Address]) -> None:
        want = {bytes(addr_key(a)): addr_key(a) for a in addrs}
        have = {bytes(k): k for k in self._local.keys()}
        for raw, k in have.items():
            if raw not in want:
                del self._local[k]
        for raw, k in want.items():
            if raw not in have:
                self._local[k] = ct.c_uint8(1)

    def totals(self) -> tuple[int, int]:
        """(events that matched, of those lost for want of buffer room), since load."""
        return (sum(self._stats[ct.c_int(0)]), sum(self._stats[ct.c_int(1)]))

    def close(self) -> None:
        self._bpf.cleanup()
