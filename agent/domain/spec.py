"""Fault specifications and faults as domain values."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from faultline.agent.domain.clock import Stamp


class FaultKind(Enum):
    DISCONNECT = "disconnect"
    LOSS = "loss"
    DELAY = "delay"
    DUPLICATE = "duplicate"
    CORRUPT = "corrupt"
    REORDER = "reorder"
    RATE = "rate"
    RESET = "reset"
    PROCESS = "process"


class Direction(Enum):
    EGRESS = "egress"
    INGRESS = "ingress"
    BOTH = "both"

    def covers(self) -> tuple[Direction, ...]:
        return (Direction.EGRESS, Direction.INGRESS) if self is Direction.BOTH else (self,)


class Protocol(Enum):
    ANY = "any"
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"


class Mechanism(Enum):
    AUTO = "auto"
    EBPF_TC = "ebpf_tc"
    NETEM = "netem"
    SIGNAL = "signal"
    SOCK_DESTROY = "sock_destroy"


# What each mechanism does in this agent version, whether or not this host has it, so a
# kind nobody offers can say which missing kernel feature is why (or that none would do it).
MECHANISM_KINDS: dict[Mechanism, tuple[FaultKind, ...]] = {
    Mechanism.EBPF_TC: (FaultKind.DISCONNECT, FaultKind.LOSS),
    Mechanism.NETEM: (FaultKind.DISCONNECT, FaultKind.LOSS, FaultKind.DELAY, FaultKind.DUPLICATE,
                      FaultKind.CORRUPT, FaultKind.REORDER, FaultKind.RATE),
    Mechanism.SIGNAL: (FaultKind.PROCESS,),
    Mechanism.SOCK_DESTROY: (FaultKind.RESET,),
}
# Kinds that act on processes or sockets, not on an interface's packets.
HOST_KINDS = (FaultKind.PROCESS, FaultKind.RESET)


class FaultState(Enum):
    ACTIVE = "active"
    HEALED = "healed"
    EXPIRED = "expired"
    SHUTDOWN = "shutdown"
    HEAL_FAILED = "heal_failed"  # still (maybe) in the kernel: the heal is retried with backoff
    PENDING = "pending"  # made in the kernel, unarmed: a coordinated start waiting for its instant


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Selector:
    interface: str
    direction: Direction = Direction.BOTH
    peers: tuple[Network, ...] = ()
    ports: tuple[int, ...] = ()
    protocol: Protocol = Protocol.ANY


class Distribution(Enum):
    UNIFORM = "uniform"
    NORMAL = "normal"
    PARETO = "pareto"
    PARETONORMAL = "paretonormal"


@dataclass(frozen=True)
class GilbertElliott:
    """Burst loss: percentages as tc takes them (p, r, 1-h, 1-k)."""

    p: float
    r: float
    loss_in_bad: float = 100.0
    loss_in_good: float = 0.0

    def expected_loss(self) -> float:
        """Long-run loss percentage: time in the bad state times its loss, plus the same for good."""
        bad = self.p / (self.p + self.r)
        return bad * self.loss_in_bad + (1 - bad) * self.loss_in_good


@dataclass(frozen=True)
class Netem:
    """What a netem qdisc is asked to do. Percentages 0..100; zero means off."""

    delay_ns: int = 0
    jitter_ns: int = 0
    delay_correlation: float = 0.0
    distribution: Distribution = Distribution.UNIFORM
    preserve_order: bool = False
    loss: float = 0.0
    loss_correlation: float = 0.0
    gilbert_elliott: GilbertElliott | None = None
    duplicate: float = 0.0
    duplicate_correlation: float = 0.0
    corrupt: float = 0.0
    corrupt_correlation: float = 0.0
    reorder: float = 0.0
    reorder_correlation: float = 0.0
    reorder_gap: int = 0
    rate_bps: int = 0
    packet_overhead: int = 0
    limit: int = 0  # packets; 0: sized by the mechanism from rate x delay


class ProcessAction(Enum):
    PAUSE = "pause"
    KILL = "kill"
    RESTART_UNIT = "restart_unit"
    STOP = "stop"  # SIGTERM: the process shuts down its own way


class TargetBy(Enum):
    PID = "pid"
    NAME = "name"
    CMDLINE = "cmdline"
    CGROUP = "cgroup"
    UNIT = "unit"


@dataclass(frozen=True)
class ProcessSpec:
    action: ProcessAction
    by: TargetBy
    value: str  # the pid as text for PID
    restart: str = ""  # KILL/STOP: the name of one of the policy's restart_commands, run at heal


@dataclass(frozen=True)
class FaultSpec:
    """A validated request: every value here is in range (see validation.py)."""

    kind: FaultKind
    selector: Selector
    lease_ms: int
    mechanism: Mechanism = Mechanism.AUTO
    loss_percent: float = 0.0
    label: str = ""
    # What netem would do for this fault; None when only the eBPF mechanism can do it.
    netem: Netem | None = None
    # Why the eBPF mechanism cannot do this fault ("" when it can).
    ebpf_cannot: str = ""
    process: ProcessSpec | None = None  # PROCESS only


@dataclass(frozen=True)
class Counters:
    matched: int = 0
    dropped: int = 0
    shaped: int = 0


@dataclass
class Fault:
    fault_id: str
    spec: FaultSpec
    mechanism: Mechanism
    applied_at: Stamp | None  # None while PENDING
    lease_expires_at: Stamp
    state: FaultState = FaultState.ACTIVE
    starts_at: Stamp | None = None  # a coordinated start's instant
    healed_at: Stamp | None = None
    counters: Counters = field(default_factory=Counters)
    heal_error: str = ""   # HEAL_FAILED: the last attempt's error
    heal_attempts: int = 0
    heal_as: FaultState | None = None  # the state a retried heal ends in (HEALED, EXPIRED, SHUTDOWN)
