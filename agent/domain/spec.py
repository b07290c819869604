"""Fault specifications and faults as domain values."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from agent.domain.clock import Stamp


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


class FaultState(Enum):
    ACTIVE = "active"
    HEALED = "healed"
    EXPIRED = "expired"
    SHUTDOWN = "shutdown"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Selector:
    interface: str
    direction: Direction = Direction.BOTH
    peers: tuple[Network, ...] = ()
    ports: tuple[int, ...] = ()
    protocol: Protocol = Protocol.ANY


@dataclass(frozen=True)
class FaultSpec:
    """A validated request: every value here is in range (see validation.py)."""

    kind: FaultKind
    selector: Selector
    lease_ms: int
    mechanism: Mechanism = Mechanism.AUTO
    loss_percent: float = 0.0
    label: str = ""


@dataclass(frozen=True)
class Counters:
    matched: int = 0
    dropped: int = 0


@dataclass
class Fault:
    fault_id: str
    spec: FaultSpec
    mechanism: Mechanism
    applied_at: Stamp
    lease_expires_at: Stamp
    state: FaultState = FaultState.ACTIVE
    healed_at: Stamp | None = None
    counters: Counters = field(default_factory=Counters)
