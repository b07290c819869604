"""Human-readable and JSON renderings of agent replies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from faultline.controller.agents.clocksync import AgentClock
from faultline.v1 import agent_pb2 as pb


def as_json(msg: Message | list[Message]) -> str:
    if isinstance(msg, list):
        return json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in msg], indent=2)
    return json.dumps(MessageToDict(msg, preserving_proto_field_name=True), indent=2)


def spec_dict(spec: pb.FaultSpec) -> dict[str, object]:
    """A fault request as plain JSON values (the journal's record of what was asked)."""
    return MessageToDict(spec, preserving_proto_field_name=True)


def mechanism(value: int) -> str:
    return enum_name(pb.Mechanism, value, "MECHANISM_")


def cert_days(h: pb.HealthResponse) -> float | None:
    """Days left on the agent's certificate (None: it serves plaintext)."""
    if not h.cert_not_after_realtime_ns:
        return None
    return (h.cert_not_after_realtime_ns - h.now.realtime_ns) / 86_400e9


def health(h: pb.HealthResponse, offset: object) -> str:
    days = cert_days(h)
    cert = "plaintext (no certificate)" if days is None else f"certificate {days:.0f} days left"
    lines = [f"{h.status}: agent {h.agent_version}, {h.active_faults} active fault(s), "
             f"netns {h.netns or '-'}, {cert}, clock {when(h.now)}, offset from this host {offset}"]
    lines += [f"  - {r}" for r in h.reasons]
    return "\n".join(lines)


def health_json(h: pb.HealthResponse, offset: AgentClock) -> str:
    """Everything the text shows: the reply, the clock offset and the certificate's days left."""
    d = MessageToDict(h, preserving_proto_field_name=True)
    d["reasons"] = list(h.reasons)
    d["offset"] = {"offset_ns": offset.offset_ns, "uncertainty_ns": offset.uncertainty_ns, "text": str(offset)}
    d["cert_days_left"] = cert_days(h)
    return json.dumps(d, indent=2)


def health_short(h: pb.HealthResponse) -> str:
    return f"{h.status}, {h.active_faults} fault(s)"


def applied(r: pb.ApplyFaultResponse) -> str:
    return (f"{r.fault_id} applied at {when(r.applied_at)} (realtime {r.applied_at.realtime_ns} ns) via "
            f"{mechanism(r.mechanism)}; heals by itself at {when(r.lease_expires_at)}")


def process_applied(r: pb.ApplyFaultResponse, action: str, spec: pb.FaultSpec) -> str:
    return f"{r.fault_id}: {action} {describe(spec)}; ends at {when(r.lease_expires_at)}"


def renewed(fault_id: str, r: pb.RenewLeaseResponse) -> str:
    return f"{fault_id} now heals at {when(r.lease_expires_at)}"


def watch_json(item: pb.WatchEvent) -> str:
    """One watch item as one JSON line."""
    return json.dumps(MessageToDict(item, preserving_proto_field_name=True))


def when(ts: pb.Timestamp) -> str:
    if not ts.realtime_ns:
        return "-"
    return datetime.fromtimestamp(ts.realtime_ns / 1e9, UTC).strftime("%H:%M:%S.%f")[:-3]


def enum_name(enum: object, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()  # type: ignore[attr-defined]


def describe(spec: pb.FaultSpec) -> str:
    s = spec.selector
    kind = enum_name(pb.FaultKind, spec.kind, "FAULT_KIND_") + _params(spec)
    if spec.WhichOneof("params") == "process":
        p = spec.process
        by = p.target.WhichOneof("by") or "?"
        text = f"{kind} {enum_name(pb.ProcessAction, p.action, 'PROCESS_ACTION_')} {by} {getattr(p.target, by, '')}"
        return text + (f" then restart {p.restart}" if p.restart else "")
    parts = [kind] if spec.kind == pb.FAULT_KIND_RESET else \
        [kind, f"on {s.interface}", enum_name(pb.Direction, s.direction, "DIRECTION_")]
    if s.peer_cidrs:
        parts.append("peers " + ",".join(s.peer_cidrs))
    if s.ports:
        parts.append("ports " + ",".join(map(str, s.ports)))
    if s.protocol:
        parts.append(enum_name(pb.Protocol, s.protocol, "PROTOCOL_"))
    return " ".join(parts)


def _params(spec: pb.FaultSpec) -> str:
    """The kind's parameters as tc would say them: ' 100ms ±10ms normal', ' 20%', ' 1000000bit'."""
    which = spec.WhichOneof("params")
    if which == "loss":
        ge = spec.loss.gilbert_elliott
        if spec.loss.HasField("gilbert_elliott"):
            return (f" gemodel p {ge.p_percent:g}% r {ge.r_percent:g}% 1-h {ge.loss_in_bad_percent:g}%"
                    f" 1-k {ge.loss_in_good_percent:g}%")
        return f" {spec.loss.percent:g}%" + (f" corr {spec.loss.correlation_percent:g}%"
                                             if spec.loss.correlation_percent else "")
    if which == "delay":
        d = spec.delay
        text = f" {d.delay_ms:g}ms"
        if d.jitter_ms:
            text += f" ±{d.jitter_ms:g}ms {enum_name(pb.DelayDistribution, d.distribution, 'DELAY_DISTRIBUTION_')}"
        return text
    if which in ("duplicate", "corrupt"):
        return f" {getattr(spec, which).percent:g}%"
    if which == "reorder":
        return f" {spec.reorder.percent:g}% (others {spec.reorder.delay_ms:g}ms)"
    if which == "rate":
        return f" {spec.rate.bits_per_second}bit/s"
    return ""


def fault_table(faults: list[pb.Fault]) -> str:
    if not faults:
        return "no faults"
    rows = [("ID", "STATE", "FAULT", "MECH", "APPLIED", "EXPIRES/HEALED", "MATCHED", "DROPPED", "SHAPED", "LABEL")]
    for f in faults:
        end = f.healed_at if f.HasField("healed_at") and f.healed_at.realtime_ns else f.lease_expires_at
        began = f"starts {when(f.starts_at)}" if f.state == pb.FAULT_STATE_PENDING else when(f.applied_at)
        rows.append((f.fault_id, enum_name(pb.FaultState, f.state, "FAULT_STATE_"), describe(f.spec),
                     enum_name(pb.Mechanism, f.mechanism, "MECHANISM_"), began, when(end),
                     str(f.counters.matched), str(f.counters.dropped), str(f.counters.shaped), f.spec.label or "-"))
    return table(rows)


def capabilities(c: pb.Capabilities) -> str:
    lines = [f"agent {c.agent_version} on kernel {c.kernel_release}", "", "kernel features:"]
    for f in c.features:
        lines.append(f"  {'yes' if f.available else 'NO ':3}  {f.name:38} {f.reason}")
    lines += ["", "fault kinds:"]
    for k in c.kinds:
        mechs = ", ".join(enum_name(pb.Mechanism, m, "MECHANISM_") for m in k.mechanisms)
        name = enum_name(pb.FaultKind, k.kind, "FAULT_KIND_")
        lines.append(f"  {name:11} {mechs or 'not offered: ' + k.reason}")
    lines += ["", f"excluded ports (never faulted): {', '.join(map(str, c.excluded_ports))}",
              f"lease: {c.min_lease_ms} ms to {c.max_lease_ms / 1000:g} s (the limit in force)", "",
              f"policy ({c.policy_source}):",
              f"  interfaces: {', '.join(c.allowed_interfaces) or 'any but lo'}",
              f"  peers: {', '.join(c.allowed_peer_cidrs) or 'any'}",
              f"  loss at most {c.max_loss_percent:g} %, delay at most {c.max_delay_ms:g} ms",
              f"  process faults: {'allowed' if c.process_faults_allowed else 'off'}, "
              f"at most {c.max_processes} processes each"]
    return "\n".join(lines)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def clock_us(ts: pb.Timestamp) -> str:
    if not ts.realtime_ns:
        return "-"
    return datetime.fromtimestamp(ts.realtime_ns / 1e9, UTC).strftime("%H:%M:%S.%f")


def flow(f: pb.Flow) -> str:
    def end(a: str, p: int) -> str:
        return f"[{a}]:{p}" if ":" in a else f"{a}:{p}"

    return f"{end(f.local_addr, f.local_port)} > {end(f.remote_addr, f.remote_port)}"


def tcp_state(value: int) -> str:
    return pb.TcpState.Name(value).removeprefix("TCP_STATE_") if value else "-"


def watch_event(e: pb.WatchEvent) -> str:
    """One line per stream item: time (UTC, µs), what, the connection (local > remote), details."""
    t = clock_us(e.at)
    which = e.WhichOneof("item")
    if which == "tcp":
        ev = e.tcp
        kind = enum_name(pb.EventKind, ev.kind, "EVENT_KIND_").upper()
        if ev.kind == pb.EVENT_KIND_STATE:
            detail = f"{tcp_state(ev.old_state)} -> {tcp_state(ev.new_state)}"
        elif ev.kind == pb.EVENT_KIND_RTT:
            detail = f"srtt {ev.srtt_us / 1000:.3f} ms  cwnd {ev.snd_cwnd}"
        elif ev.kind == pb.EVENT_KIND_RESET_RECEIVED:
            detail = ""
        else:
            detail = f"in {tcp_state(ev.new_state)}"
        task = f"  pid {ev.pid} ({ev.comm})" if ev.pid else ""
        return f"{t}  {kind:14} {flow(ev.flow):45} {detail}{task}".rstrip()
    if which == "watching":
        w = e.watching
        return (f"{t}  WATCHING       probes {', '.join(w.probes)} via the {w.transport}; connections of "
                f"{', '.join(w.local_addrs) or 'no address'}; realtime within {w.offset_uncertainty_ns / 1000:.1f} µs")
    if which == "lost":
        return f"{t}  LOST           {e.lost.count} event(s) lost in the {e.lost.where}; {e.lost.total} in all"
    c = e.fault_counters
    return (f"{t}  FAULT          {c.fault_id}: matched {c.counters.matched}, dropped {c.counters.dropped}"
            + (f", shaped {c.counters.shaped}" if c.counters.shaped else ""))


def flow_table(r: pb.SummarizeFlowsResponse) -> str:
    head = (f"{len(r.flows)} flow(s); {r.watchers} watch stream(s) open; "
            f"{r.events_matched} event(s) matched, {r.events_lost} lost in the kernel buffer")
    if not r.flows:
        return head + ("" if r.watchers else "\n(nothing is recorded while no watch stream is open)")
    rows = [("FLOW", "STATE", "FIRST", "LAST", "RETRANS", "FIRST/LAST RETRANS", "RST OUT/IN", "RTT p50/p90/p99 ms")]
    for s in r.flows:
        rtt = (f"{s.rtt_p50_us / 1000:.2f}/{s.rtt_p90_us / 1000:.2f}/{s.rtt_p99_us / 1000:.2f}"
               if s.rtt_samples else "-")
        retr = f"{when(s.first_retransmit)}/{when(s.last_retransmit)}" if s.retransmits else "-"
        rows.append((flow(s.flow), tcp_state(s.state), when(s.first_seen), when(s.last_seen), str(s.retransmits),
                     retr, f"{s.resets_sent}/{s.resets_received}", rtt))
    return head + "\n" + table(rows)
