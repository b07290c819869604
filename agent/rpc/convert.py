"""proto <-> domain values. One table per enum, used both ways."""

from __future__ import annotations

from faultline.agent.domain import events
from faultline.agent.domain.clock import Stamp
from faultline.agent.domain.errors import InvalidArgument
from faultline.agent.domain.events import EventKind, Flow, Lost, StreamItem, TcpEvent, WatchFilter, Watching
from faultline.agent.domain.flows import FlowSummary
from faultline.agent.domain.spec import (
    Direction,
    Distribution,
    Fault,
    FaultKind,
    FaultState,
    Mechanism,
    Netem,
    ProcessAction,
    ProcessSpec,
    Protocol,
    TargetBy,
)
from faultline.agent.domain.validation import RawSpec
from faultline.v1 import agent_pb2 as pb

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
    pb.MECHANISM_NETEM: Mechanism.NETEM, pb.MECHANISM_SIGNAL: Mechanism.SIGNAL,
    pb.MECHANISM_SOCK_DESTROY: Mechanism.SOCK_DESTROY,
}
PROCESS_ACTION = {
    pb.PROCESS_ACTION_PAUSE: ProcessAction.PAUSE, pb.PROCESS_ACTION_KILL: ProcessAction.KILL,
    pb.PROCESS_ACTION_RESTART_UNIT: ProcessAction.RESTART_UNIT, pb.PROCESS_ACTION_STOP: ProcessAction.STOP,
}
DISTRIBUTION = {
    pb.DELAY_DISTRIBUTION_UNIFORM: Distribution.UNIFORM, pb.DELAY_DISTRIBUTION_NORMAL: Distribution.NORMAL,
    pb.DELAY_DISTRIBUTION_PARETO: Distribution.PARETO, pb.DELAY_DISTRIBUTION_PARETONORMAL: Distribution.PARETONORMAL,
}
STATE = {
    FaultState.ACTIVE: pb.FAULT_STATE_ACTIVE, FaultState.HEALED: pb.FAULT_STATE_HEALED,
    FaultState.EXPIRED: pb.FAULT_STATE_EXPIRED, FaultState.SHUTDOWN: pb.FAULT_STATE_SHUTDOWN,
    FaultState.HEAL_FAILED: pb.FAULT_STATE_HEAL_FAILED, FaultState.PENDING: pb.FAULT_STATE_PENDING,
}


def _reverse(table: dict) -> dict:
    out = {}
    for k, v in table.items():
        out.setdefault(v, k)
    return out


KIND_PB, DIRECTION_PB, PROTOCOL_PB, MECHANISM_PB, DISTRIBUTION_PB, PROCESS_ACTION_PB = map(
    _reverse, (KIND, DIRECTION, PROTOCOL, MECHANISM, DISTRIBUTION, PROCESS_ACTION))


def raw_spec(spec: pb.FaultSpec) -> RawSpec:
    sel = spec.selector
    which = spec.WhichOneof("params")
    raw = RawSpec(
        kind=KIND.get(spec.kind),
        unknown_kind=spec.kind,
        interface=sel.interface,
        direction=DIRECTION.get(sel.direction),
        peer_cidrs=list(sel.peer_cidrs),
        ports=list(sel.ports),
        protocol=PROTOCOL.get(sel.protocol),
        protocol_value=sel.protocol,
        lease_ms=spec.lease_ms,
        mechanism=MECHANISM.get(spec.mechanism),
        loss_percent=spec.loss.percent if which == "loss" and not spec.loss.HasField("gilbert_elliott") else None,
        label=spec.label,
        direction_unspecified=sel.direction == pb.DIRECTION_UNSPECIFIED,
        params=which,
        queue_limit=spec.queue_limit_packets,
    )
    if which in ("loss", "duplicate", "corrupt", "reorder"):
        p = getattr(spec, which)
        raw.correlation = p.correlation_percent
        if which != "loss":
            raw.percent = p.percent
    if which == "loss" and spec.loss.HasField("gilbert_elliott"):
        ge = spec.loss.gilbert_elliott
        raw.gilbert_elliott = (ge.p_percent, ge.r_percent, ge.loss_in_bad_percent, ge.loss_in_good_percent)
        raw.loss_percent = spec.loss.percent or None
    elif which == "delay":
        d = spec.delay
        raw.delay_ms, raw.jitter_ms, raw.correlation = d.delay_ms, d.jitter_ms, d.correlation_percent
        raw.distribution, raw.preserve_order = DISTRIBUTION.get(d.distribution), d.preserve_order
    elif which == "reorder":
        raw.delay_ms, raw.gap = spec.reorder.delay_ms, spec.reorder.gap
    elif which == "rate":
        raw.rate_bps, raw.packet_overhead = spec.rate.bits_per_second, spec.rate.packet_overhead_bytes
    elif which == "process":
        p = spec.process
        raw.process_action = PROCESS_ACTION.get(p.action)
        by = p.target.WhichOneof("by")
        if by is not None:
            raw.target_by, raw.target_value = TargetBy(by), str(getattr(p.target, by))
        raw.restart = p.restart
    return raw


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
    _params(s.kind, s.loss_percent, s.netem, spec)
    if s.process is not None:
        spec.process.CopyFrom(_process(s.process))
    return pb.Fault(
        fault_id=f.fault_id,
        spec=spec,
        mechanism=MECHANISM_PB[f.mechanism],
        state=STATE[f.state],
        applied_at=stamp(f.applied_at),
        lease_expires_at=stamp(f.lease_expires_at),
        healed_at=stamp(f.healed_at),
        counters=pb.Counters(matched=f.counters.matched, dropped=f.counters.dropped, shaped=f.counters.shaped),
        heal_error=f.heal_error,
        starts_at=stamp(f.starts_at),
    )


def _params(kind: FaultKind, loss_percent: float, n: Netem | None, spec: pb.FaultSpec) -> None:
    """The kind's parameters back into the proto oneof, as they were validated."""
    if kind is FaultKind.DISCONNECT:
        spec.disconnect.SetInParent()
    if kind is FaultKind.RESET:
        spec.reset.SetInParent()
    if n is None:
        return
    spec.queue_limit_packets = n.limit
    if kind is FaultKind.LOSS:
        spec.loss.percent = loss_percent or n.loss
        spec.loss.correlation_percent = n.loss_correlation
        if (ge := n.gilbert_elliott) is not None:
            spec.loss.gilbert_elliott.CopyFrom(pb.GilbertElliott(
                p_percent=ge.p, r_percent=ge.r, loss_in_bad_percent=ge.loss_in_bad,
                loss_in_good_percent=ge.loss_in_good))
    elif kind is FaultKind.DELAY:
        spec.delay.CopyFrom(pb.DelayParams(
            delay_ms=n.delay_ns / 1e6, jitter_ms=n.jitter_ns / 1e6, correlation_percent=n.delay_correlation,
            distribution=DISTRIBUTION_PB[n.distribution], preserve_order=n.preserve_order))
    elif kind is FaultKind.DUPLICATE:
        spec.duplicate.CopyFrom(pb.DuplicateParams(percent=n.duplicate, correlation_percent=n.duplicate_correlation))
    elif kind is FaultKind.CORRUPT:
        spec.corrupt.CopyFrom(pb.CorruptParams(percent=n.corrupt, correlation_percent=n.corrupt_correlation))
    elif kind is FaultKind.REORDER:
        spec.reorder.CopyFrom(pb.ReorderParams(percent=n.reorder, correlation_percent=n.reorder_correlation,
                                               delay_ms=n.delay_ns / 1e6, gap=n.reorder_gap))
    elif kind is FaultKind.RATE:
        spec.rate.CopyFrom(pb.RateParams(bits_per_second=n.rate_bps, packet_overhead_bytes=n.packet_overhead))


def _process(p: ProcessSpec) -> pb.ProcessParams:
    target = pb.ProcessTarget(pid=int(p.value)) if p.by is TargetBy.PID else pb.ProcessTarget(**{p.by.value: p.value})
    return pb.ProcessParams(action=PROCESS_ACTION_PB[p.action], target=target, restart=p.restart)


# -- observation -------------------------------------------------------------
EVENT_KIND = {
    pb.EVENT_KIND_STATE: EventKind.STATE, pb.EVENT_KIND_RETRANSMIT: EventKind.RETRANSMIT,
    pb.EVENT_KIND_RESET_SENT: EventKind.RESET_SENT, pb.EVENT_KIND_RESET_RECEIVED: EventKind.RESET_RECEIVED,
    pb.EVENT_KIND_RTT: EventKind.RTT,
}
EVENT_KIND_PB = _reverse(EVENT_KIND)
DEFAULT_RTT_INTERVAL_MS = 100


def watch_filter(f: pb.WatchFilter) -> WatchFilter:
    kinds = []
    for i, k in enumerate(f.kinds):
        if k not in EVENT_KIND:
            raise InvalidArgument(f"filter.kinds[{i}]", f"one of {sorted(pb.EventKind.Name(x) for x in EVENT_KIND)}",
                                  k)
        kinds.append(EVENT_KIND[k])
    rtt = f.rtt_interval_ms if f.HasField("rtt_interval_ms") else DEFAULT_RTT_INTERVAL_MS
    return events.watch_filter(kinds, list(f.ports), list(f.peer_cidrs), rtt, not f.no_fault_counters)


def _flow(flow: Flow) -> pb.Flow:
    return pb.Flow(local_addr=flow.local_addr, local_port=flow.local_port,
                   remote_addr=flow.remote_addr, remote_port=flow.remote_port)


def stream_item(item: StreamItem) -> pb.WatchEvent:
    if isinstance(item, TcpEvent):
        return pb.WatchEvent(at=stamp(item.at), tcp=pb.TcpEvent(
            kind=EVENT_KIND_PB[item.kind], flow=_flow(item.flow), socket=item.sock, old_state=item.old_state,
            new_state=item.new_state, pid=item.pid, comm=item.comm, srtt_us=item.srtt_us, snd_cwnd=item.snd_cwnd))
    if isinstance(item, Watching):
        return pb.WatchEvent(at=stamp(item.at), watching=pb.Watching(
            transport=item.transport, probes=item.probes, local_addrs=item.local_addrs,
            offset_uncertainty_ns=item.offset_uncertainty_ns))
    if isinstance(item, Lost):
        return pb.WatchEvent(at=stamp(item.at), lost=pb.LostEvents(where=item.where, count=item.count,
                                                                    total=item.total))
    c = item.counters
    return pb.WatchEvent(at=stamp(item.at), fault_counters=pb.FaultCountersUpdate(
        fault_id=item.fault_id, counters=pb.Counters(matched=c.matched, dropped=c.dropped, shaped=c.shaped)))


def flow_summary(s: FlowSummary) -> pb.FlowSummary:
    return pb.FlowSummary(
        flow=_flow(s.flow), first_seen=stamp(s.first_seen), last_seen=stamp(s.last_seen), state=s.state,
        transitions=[pb.StateChange(at=stamp(at), old_state=o, new_state=n) for at, o, n in s.transitions],
        retransmits=s.retransmits, first_retransmit=stamp(s.first_retransmit),
        last_retransmit=stamp(s.last_retransmit), resets_sent=s.resets_sent, resets_received=s.resets_received,
        rtt_samples=s.rtt_samples, rtt_p50_us=s.rtt_p50_us, rtt_p90_us=s.rtt_p90_us, rtt_p99_us=s.rtt_p99_us,
    )
