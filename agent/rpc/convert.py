"""proto <-> domain values. One table per enum, used both ways."""

from __future__ import annotations

from faultline.v1 import agent_pb2 as pb

from agent.domain.clock import Stamp
from agent.domain.spec import Direction, Fault, FaultKind, FaultState, Mechanism, Protocol
from agent.domain.validation import RawSpec

KIND = {
    pb.FAULT_KIND_DISCONNECT: FaultKind.DISCONNECT, pb.FAULT_KIND_LOSS: FaultKind.LOSS,
    pb.FAULT_KIND_DELAY: FaultKind.DELAY, pb.FAULT_KIND_DUPLICATE: FaultKind.DUPLICATE,
    pb.FAULT_KIND_CORRUPT: FaultKind.CORRUPT, pb.FAULT_KIND_REORDER: FaultKind.REORDER,
    pb.FAULT_KIND_RATE: FaultKind.RATE, pb.FAULT_KIND_RESET: FaultKind.RESET,
    pb.FAULT_KIND_PROCESS: FaultKind.PROCESS,
}
DIRECTION = {  # BOTH before UNSPECIFIED, so the reverse table sends BOTH back as DIRECTION_BOTH
    pb.DIRECTION_BOTH: Direction.BOTH, pb.DIRECTION_UNSPECIFIED: Direction.BOTH,
    pb.DIRECTION_EGRESS: Direction.EGRESS, pb.DIRECTION_INGRESS: Direction.INGRESS,
}
PROTOCOL = {
    pb.PROTOCOL_ANY: Protocol.ANY, pb.PROTOCOL_TCP: Protocol.TCP,
    pb.PROTOCOL_UDP: Protocol.UDP, pb.PROTOCOL_ICMP: Protocol.ICMP,
}
MECHANISM = {
    pb.MECHANISM_UNSPECIFIED: Mechanism.AUTO, pb.MECHANISM_EBPF_TC: Mechanism.EBPF_TC,
    pb.MECHANISM_NETEM: Mechanism.NETEM,
}
STATE = {
    FaultState.ACTIVE: pb.FAULT_STATE_ACTIVE, FaultState.HEALED: pb.FAULT_STATE_HEALED,
    FaultState.EXPIRED: pb.FAULT_STATE_EXPIRED, FaultState.SHUTDOWN: pb.FAULT_STATE_SHUTDOWN,
}


def _reverse(table: dict) -> dict:
    out = {}
    for k, v in table.items():
        out.setdefault(v, k)
    return out


KIND_PB, DIRECTION_PB, PROTOCOL_PB, MECHANISM_PB = map(_reverse, (KIND, DIRECTION, PROTOCOL, MECHANISM))


def raw_spec(spec: pb.FaultSpec) -> RawSpec:
    sel = spec.selector
    return RawSpec(
        kind=KIND.get(spec.kind),
        unknown_kind=spec.kind,
        interface=sel.interface,
        direction=DIRECTION.get(sel.direction),
        peer_cidrs=list(sel.peer_cidrs),
        ports=list(sel.ports),
        protocol=PROTOCOL.get(sel.protocol),
        lease_ms=spec.lease_ms,
        mechanism=MECHANISM.get(spec.mechanism),
        loss_percent=spec.loss.percent if spec.HasField("loss") else None,
        label=spec.label,
    )


def stamp(s: Stamp | None) -> pb.Timestamp | None:
    return None if s is None else pb.Timestamp(realtime_ns=s.realtime_ns, monotonic_ns=s.monotonic_ns)


def fault(f: Fault) -> pb.Fault:
    s = f.spec
    spec = pb.FaultSpec(
        kind=KIND_PB[s.kind],
        selector=pb.Selector(
            interface=s.selector.interface,
            direction=DIRECTION_PB[s.selector.direction],
            peer_cidrs=[str(p) for p in s.selector.peers],
            ports=list(s.selector.ports),
            protocol=PROTOCOL_PB[s.selector.protocol],
        ),
        lease_ms=s.lease_ms,
        mechanism=MECHANISM_PB[s.mechanism],
        label=s.label,
    )
    if s.kind is FaultKind.LOSS:
        spec.loss.percent = s.loss_percent
    elif s.kind is FaultKind.DISCONNECT:
        spec.disconnect.SetInParent()
    return pb.Fault(
        fault_id=f.fault_id,
        spec=spec,
        mechanism=MECHANISM_PB[f.mechanism],
        state=STATE[f.state],
        applied_at=stamp(f.applied_at),
        lease_expires_at=stamp(f.lease_expires_at),
        healed_at=stamp(f.healed_at),
        counters=pb.Counters(matched=f.counters.matched, dropped=f.counters.dropped),
    )
