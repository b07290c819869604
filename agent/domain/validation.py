"""Every request field checked before anything touches the kernel.

Errors name the field as it is spelled in the proto (spec.selector.ports[2]) and the
allowed range, so a user can fix the request from the message alone.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.domain.errors import InvalidArgument
from agent.domain.spec import Direction, FaultKind, FaultSpec, Mechanism, Network, Protocol, Selector


@dataclass(frozen=True)
class Limits:
    min_lease_ms: int = 100
    max_lease_ms: int = 3_600_000
    max_peers: int = 8   # per fault; the BPF rule has room for this many CIDRs
    max_ports: int = 8
    max_label: int = 200


@dataclass
class RawSpec:
    """A request as it arrived, before validation. Enum fields are None when unset/unknown."""

    kind: FaultKind | None
    interface: str
    direction: Direction | None = None
    peer_cidrs: Sequence[str] = ()
    ports: Sequence[int] = ()
    protocol: Protocol | None = Protocol.ANY
    lease_ms: int = 0
    mechanism: Mechanism | None = Mechanism.AUTO
    loss_percent: float | None = None
    label: str = ""
    unknown_kind: int | None = field(default=None)  # raw value when kind is not one we know


def parse_cidr(text: str, where: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise InvalidArgument(
            where, "an IPv4 or IPv6 CIDR with no host bits set, e.g. 10.77.0.2/32 or fd77::2/128", text
        ) from e


def validate(
    raw: RawSpec, limits: Limits, interface_exists: Callable[[str], bool]
) -> FaultSpec:
    if raw.kind is None:
        allowed = ", ".join(k.name for k in FaultKind)
        raise InvalidArgument("spec.kind", f"one of {allowed}", raw.unknown_kind or "unspecified")

    if not limits.min_lease_ms <= raw.lease_ms <= limits.max_lease_ms:
        raise InvalidArgument(
            "spec.lease_ms", f"{limits.min_lease_ms} ms to {limits.max_lease_ms} ms", raw.lease_ms
        )

    loss = 0.0
    if raw.kind is FaultKind.LOSS:
        p = raw.loss_percent
        if p is None or math.isnan(p) or not 0 < p <= 100:
            raise InvalidArgument("spec.loss.percent", "0 < percent <= 100", p)
        loss = float(p)
    elif raw.loss_percent is not None:
        raise InvalidArgument("spec.loss", f"only with kind LOSS, not {raw.kind.name}", raw.loss_percent)

    if not raw.interface:
        raise InvalidArgument("spec.selector.interface",
                              "an interface name, or peer_cidrs to find it by route", raw.interface)
    if not interface_exists(raw.interface):
        raise InvalidArgument(
            "spec.selector.interface", "an interface in the agent's network namespace", raw.interface
        )

    if len(raw.peer_cidrs) > limits.max_peers:
        raise InvalidArgument("spec.selector.peer_cidrs", f"at most {limits.max_peers} CIDRs", len(raw.peer_cidrs))
    peers = tuple(
        parse_cidr(c, f"spec.selector.peer_cidrs[{i}]") for i, c in enumerate(raw.peer_cidrs)
    )

    if len(raw.ports) > limits.max_ports:
        raise InvalidArgument("spec.selector.ports", f"at most {limits.max_ports} ports", len(raw.ports))
    for i, port in enumerate(raw.ports):
        if not 1 <= port <= 65535:
            raise InvalidArgument(f"spec.selector.ports[{i}]", "1 to 65535", port)
    protocol = raw.protocol or Protocol.ANY
    if raw.ports and protocol not in (Protocol.ANY, Protocol.TCP, Protocol.UDP):
        raise InvalidArgument(
            "spec.selector.protocol", "TCP, UDP or ANY when ports are given", protocol.name
        )

    if raw.direction is None:
        raise InvalidArgument("spec.selector.direction", "EGRESS, INGRESS or BOTH", "unknown")
    if raw.mechanism is None:
        raise InvalidArgument("spec.mechanism", "UNSPECIFIED, EBPF_TC or NETEM", "unknown")
    if len(raw.label) > limits.max_label:
        raise InvalidArgument("spec.label", f"at most {limits.max_label} characters", len(raw.label))

    return FaultSpec(
        kind=raw.kind,
        selector=Selector(
            interface=raw.interface,
            direction=raw.direction,
            peers=peers,
            ports=tuple(dict.fromkeys(raw.ports)),  # dedupe, keep order
            protocol=protocol,
        ),
        lease_ms=raw.lease_ms,
        mechanism=raw.mechanism,
        loss_percent=loss,
        label=raw.label,
    )
