"""What the observer reports, as domain values: TCP events, the filter a watcher asks for,
and the notices a watch stream carries besides events (ready, lost, fault counters)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from faultline.agent.domain.clock import Stamp
from faultline.agent.domain.errors import InvalidArgument
from faultline.agent.domain.spec import Counters, Network
from faultline.agent.domain.validation import parse_cidr

MAX_WATCH_PORTS = 8
MAX_WATCH_PEERS = 8
MAX_RTT_INTERVAL_MS = 60_000


class EventKind(Enum):
    # Values are the probes' EV_* codes (tcp_watch.c).
    STATE = 1
    RETRANSMIT = 2
    RESET_SENT = 3
    RESET_RECEIVED = 4
    RTT = 5


# The kernel's TCP states (include/net/tcp_states.h).
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}
ESTABLISHED = 1


# What an empty kinds list means: every per-connection event. RTT samples come from a probe
# that runs on every received segment (unsampled it cost a saturated link 23 % of its
# throughput in bench/observe_cost), so a watcher asks for them by name.
DEFAULT_KINDS = frozenset({EventKind.STATE, EventKind.RETRANSMIT, EventKind.RESET_SENT, EventKind.RESET_RECEIVED})


def state_name(code: int) -> str:
    return TCP_STATES.get(code, f"STATE_{code}")


@dataclass(frozen=True)
class Flow:
    """One TCP connection seen from this host: local end first."""

    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int

    def __str__(self) -> str:
        def end(a: str, p: int) -> str:
            return f"[{a}]:{p}" if ":" in a else f"{a}:{p}"

        return f"{end(self.local_addr, self.local_port)} > {end(self.remote_addr, self.remote_port)}"


@dataclass(frozen=True)
class TcpEvent:
    kind: EventKind
    at: Stamp                 # monotonic from the kernel, realtime by the agent's measured offset
    flow: Flow
    sock: int                 # kernel socket address: tells two connections on one 4-tuple apart
    old_state: int = 0        # STATE only
    new_state: int = 0        # STATE: the new state; RETRANSMIT / RESET_SENT: the socket's state
    pid: int = 0              # where known: connect/close/shutdown run in the caller's context
    comm: str = ""
    srtt_us: int = 0          # RTT only
    snd_cwnd: int = 0


@dataclass(frozen=True)
class Watching:
    """First item of every stream: the probes are attached; events from now on are seen."""

    at: Stamp
    transport: str            # "ring buffer" or "perf buffer"
    probes: tuple[str, ...]
    local_addrs: tuple[str, ...]
    offset_uncertainty_ns: int


@dataclass(frozen=True)
class Lost:
    """Events that matched but never reached this watcher. `where`: kernel buffer or agent queue."""

    at: Stamp
    where: str
    count: int
    total: int


@dataclass(frozen=True)
class FaultCounters:
    at: Stamp
    fault_id: str
    counters: Counters


StreamItem = TcpEvent | Watching | Lost | FaultCounters


@dataclass(frozen=True)
class WatchFilter:
    kinds: frozenset[EventKind]
    ports: tuple[int, ...] = ()
    peers: tuple[Network, ...] = ()
    rtt_interval_ms: int = 100   # at most one RTT sample per connection this often (0: every segment)
    fault_counters: bool = True  # also stream the active faults' counters when they change

    def matches(self, flow: Flow) -> bool:
        """The same test the kernel makes (tcp_watch.c); used for summaries of recorded flows."""
        if self.ports and flow.local_port not in self.ports and flow.remote_port not in self.ports:
            return False
        if self.peers:
            addr = ipaddress.ip_address(flow.remote_addr)
            return any(addr.version == n.version and addr in n for n in self.peers)
        return True


def watch_filter(kinds: Sequence[EventKind], ports: Sequence[int], peer_cidrs: Sequence[str],
                 rtt_interval_ms: int, fault_counters: bool = True, where: str = "filter") -> WatchFilter:
    """Validate a watch request's filter; errors name the field as the proto spells it."""
    if len(ports) > MAX_WATCH_PORTS:
        raise InvalidArgument(f"{where}.ports", f"at most {MAX_WATCH_PORTS} ports", len(ports))
    for i, p in enumerate(ports):
        if not 1 <= p <= 65535:
            raise InvalidArgument(f"{where}.ports[{i}]", "a port from 1 to 65535", p)
    if len(peer_cidrs) > MAX_WATCH_PEERS:
        raise InvalidArgument(f"{where}.peer_cidrs", f"at most {MAX_WATCH_PEERS} CIDRs", len(peer_cidrs))
    peers = tuple(parse_cidr(c, f"{where}.peer_cidrs[{i}]") for i, c in enumerate(peer_cidrs))
    if not 0 <= rtt_interval_ms <= MAX_RTT_INTERVAL_MS:
        raise InvalidArgument(f"{where}.rtt_interval_ms", f"0 to {MAX_RTT_INTERVAL_MS} ms", rtt_interval_ms)
    return WatchFilter(frozenset(kinds or DEFAULT_KINDS), tuple(dict.fromkeys(ports)), peers, rtt_interval_ms,
                       fault_counters)
