"""The tc drop classifier (tc_drop.c) compiled and loaded with bcc; its maps as Python."""

from __future__ import annotations

import ctypes as ct
import struct
from dataclasses import dataclass
from pathlib import Path

from faultline.agent.domain.errors import Exhausted, FailedPrecondition
from faultline.agent.domain.spec import Counters, Direction, Network, Protocol

SOURCE = Path(__file__).with_name("tc_drop.c")
MAX_FAULTS = 32
MAX_CIDRS = 8
MAX_PORTS = 8
MAX_EXCLUDED = 8
DIR_BITS = {Direction.EGRESS: 1, Direction.INGRESS: 2}
PROTO_CODE = {Protocol.ANY: 0, Protocol.ICMP: 1, Protocol.TCP: 6, Protocol.UDP: 17}
FUNC = {Direction.EGRESS: "fl_egress", Direction.INGRESS: "fl_ingress"}
SHAPE_FUNC = "fl_shape"


class CidrC(ct.Structure):
    _fields_ = [
        ("addr", ct.c_uint32 * 4),
        ("mask", ct.c_uint32 * 4),
        ("family", ct.c_uint8),
        ("pad", ct.c_uint8 * 3),
    ]


class RuleC(ct.Structure):
    _fields_ = [
        ("ifindex", ct.c_uint32),
        ("threshold", ct.c_uint32),
        ("always", ct.c_uint8),
        ("directions", ct.c_uint8),
        ("protocol", ct.c_uint8),
        ("n_cidrs", ct.c_uint8),
        ("n_ports", ct.c_uint8),
        ("band", ct.c_uint8),
        ("pad", ct.c_uint8 * 2),
        ("ports", ct.c_uint16 * MAX_PORTS),
        ("cidrs", CidrC * MAX_CIDRS),
    ]


class CountersC(ct.Structure):
    _fields_ = [("matched", ct.c_uint64), ("dropped", ct.c_uint64)]


@dataclass(frozen=True)
class Rule:
    """What one fault asks of the classifier (pure data, testable without bcc)."""

    ifindex: int
    directions: tuple[Direction, ...]
    drop_probability: float  # 1.0 drops every matching packet
    peers: tuple[Network, ...] = ()
    ports: tuple[int, ...] = ()
    protocol: Protocol = Protocol.ANY
    band: int = 0  # >0: not a drop rule; send matches to this htb class minor (netem)

    def to_c(self) -> RuleC:
        r = RuleC()
        r.ifindex = self.ifindex
        r.always = 1 if self.drop_probability >= 1.0 else 0
        r.threshold = min(int(self.drop_probability * 2**32), 2**32 - 1)
        r.directions = sum(DIR_BITS[d] for d in self.directions)
        r.protocol = PROTO_CODE[self.protocol]
        r.band = self.band
        r.n_ports = len(self.ports)
        for i, p in enumerate(self.ports):
            r.ports[i] = p
        r.n_cidrs = len(self.peers)
        for i, net in enumerate(self.peers):
            addr = net.network_address.packed.ljust(16, b"\0")
            mask = net.netmask.packed.ljust(16, b"\0")
            # Words in memory order, so the kernel compares them with packet bytes as-is.
            r.cidrs[i].addr[:] = struct.unpack("=4I", addr)
            r.cidrs[i].mask[:] = struct.unpack("=4I", mask)
            r.cidrs[i].family = net.version
        return r


class TcDropProgram:
    """One compiled classifier and its maps. Compiling takes 0.5-3 s: do it once, at start."""

    def __init__(self, excluded_ports: tuple[int, ...]) -> None:
        if len(excluded_ports) > MAX_EXCLUDED:
            raise ValueError(f"at most {MAX_EXCLUDED} excluded ports")
        try:
            from bcc import BPF
        except ImportError as e:
            raise FailedPrecondition("bcc (python3-bpfcc) is not importable: eBPF faults unavailable") from e
        try:
            self._bpf = BPF(
                src_file=str(SOURCE),
                cflags=[f"-DMAX_FAULTS={MAX_FAULTS}", f"-DMAX_CIDRS={MAX_CIDRS}",
                        f"-DMAX_PORTS={MAX_PORTS}", f"-DMAX_EXCLUDED={MAX_EXCLUDED}"],
            )
            self.functions = {d: self._bpf.load_func(f, BPF.SCHED_CLS) for d, f in FUNC.items()}
            self.shape_function = self._bpf.load_func(SHAPE_FUNC, BPF.SCHED_CLS)
        except Exception as e:
            raise FailedPrecondition(f"the tc classifier did not compile or load: {e}") from e
        self._rules = self._bpf["rules"]
        self._active = self._bpf["active"]
        self._counters = self._bpf["counters"]
        self._deadlines = self._bpf["deadlines"]
        # The ctypes mirror must match the C layout exactly, or rules would be garbage.
        if ct.sizeof(self._rules.Leaf) != ct.sizeof(RuleC):
            raise FailedPrecondition(
                f"struct rule is {ct.sizeof(self._rules.Leaf)} bytes in C, {ct.sizeof(RuleC)} in Python"
            )
        excluded = self._bpf["excluded"]
        for i, port in enumerate(excluded_ports):
            excluded[ct.c_int(i)] = ct.c_uint16(port)
        self._mask = 0
        self._taken: set[int] = set()  # slots handed out, to the drop and the netem mechanism alike

    def take_slot(self) -> int:
        for slot in range(MAX_FAULTS):
            if slot not in self._taken:
                self._taken.add(slot)
                return slot
        raise Exhausted(f"all {MAX_FAULTS} fault slots of the classifier are in use; heal a fault first")

    def give_back(self, slot: int) -> None:
        self.clear_rule(slot)
        self._taken.discard(slot)

    def fd(self, direction: Direction) -> int:
        return self.functions[direction].fd

    def name(self, direction: Direction) -> str:
        return FUNC[direction]

    def shape_fd(self) -> int:
        return self.shape_function.fd

    def set_rule(self, slot: int, rule: Rule, armed: bool = True, deadline_ns: int = 0) -> None:
        """Write the rule, its lease end first (CLOCK_MONOTONIC ns; 0: none); armed=False leaves
        it invisible to packets until arm(slot)."""
        key = ct.c_int(slot)
        self._counters[key] = self._counters.Leaf()  # one zeroed value per CPU
        self._deadlines[key] = ct.c_uint64(deadline_ns)
        self._rules[key] = rule.to_c()
        if armed:
            self.arm(slot)

    def arm(self, slot: int) -> None:
        """Packets see the rule from now: one map update. The rule is complete before its bit is set."""
        self._mask |= 1 << slot
        self._active[ct.c_int(0)] = ct.c_uint64(self._mask)

    def set_deadline(self, slot: int, deadline_ns: int) -> None:
        """Move the rule's lease end (one 8-byte map update: a packet sees the old or the new)."""
        self._deadlines[ct.c_int(slot)] = ct.c_uint64(deadline_ns)

    def deadline(self, slot: int) -> int:
        return int(self._deadlines[ct.c_int(slot)].value)

    def clear_rule(self, slot: int) -> None:
        self._mask &= ~(1 << slot)
        self._active[ct.c_int(0)] = ct.c_uint64(self._mask)

    def counters(self, slot: int) -> Counters:
        per_cpu = self._counters[ct.c_int(slot)]
        return Counters(sum(c.matched for c in per_cpu), sum(c.dropped for c in per_cpu))

    def close(self) -> None:
        self._bpf.cleanup()
