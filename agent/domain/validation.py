"""Every request field checked before anything touches the kernel.

Errors name the field as it is spelled in the proto (spec.selector.ports[2]) and the
allowed range, so a user can fix the request from the message alone.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from faultline.agent.domain.errors import InvalidArgument
from faultline.agent.domain.spec import (
    HOST_KINDS,
    Direction,
    Distribution,
    FaultKind,
    FaultSpec,
    GilbertElliott,
    Mechanism,
    Netem,
    Network,
    ProcessAction,
    ProcessSpec,
    Protocol,
    Selector,
    TargetBy,
)

MAX_DELAY_MS = 60_000.0
MIN_RATE_BPS, MAX_RATE_BPS = 8, 10**12
MAX_QUEUE_LIMIT = 10_000_000
MAX_GAP = 1_000_000
# Kinds only netem does; their direction defaults to EGRESS (netem shapes what leaves).
MAX_PID = 4_194_304  # the kernel's PID_MAX_LIMIT on 64-bit
UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,200}\.(service|scope)$")
CGROUP_RE = re.compile(r"^[A-Za-z0-9:_.@-]+(/[A-Za-z0-9:_.@-]+)*$")
RESTART_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NETEM_ONLY = (FaultKind.DELAY, FaultKind.DUPLICATE, FaultKind.CORRUPT, FaultKind.REORDER, FaultKind.RATE)


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
    direction_unspecified: bool = False
    protocol_value: int = 0  # the number sent, for the error when it is no Protocol
    params: str | None = None  # which kind's parameters were sent (the proto oneof), None if none
    percent: float | None = None  # duplicate / corrupt / reorder
    correlation: float = 0.0
    gilbert_elliott: tuple[float, float, float, float] | None = None
    delay_ms: float | None = None
    jitter_ms: float = 0.0
    distribution: Distribution | None = Distribution.UNIFORM
    preserve_order: bool = False
    gap: int = 0
    rate_bps: int = 0
    packet_overhead: int = 0
    queue_limit: int = 0
    process_action: ProcessAction | None = None  # None: unspecified or unknown
    target_by: TargetBy | None = None
    target_value: str = ""
    restart: str = ""


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

    if raw.params is not None and raw.params != raw.kind.name.lower():
        raise InvalidArgument(f"spec.{raw.params}", f"only with kind {raw.params.upper()}, not {raw.kind.name}",
                              raw.params)
    if raw.loss_percent is not None and raw.kind is not FaultKind.LOSS:
        raise InvalidArgument("spec.loss", f"only with kind LOSS, not {raw.kind.name}", raw.loss_percent)
    if raw.kind in HOST_KINDS:
        return _host_fault(raw, limits)
    loss, netem, ebpf_cannot = _kind_params(raw)

    if not raw.interface:
        raise InvalidArgument("spec.selector.interface",
                              "an interface name, or peer_cidrs to find it by route", raw.interface)
    if not interface_exists(raw.interface):
        raise InvalidArgument(
            "spec.selector.interface", "an interface in the agent's network namespace", raw.interface
        )

    peers = _peers(raw, limits)
    _ports(raw, limits)
    if raw.protocol is None:  # an unknown value is refused, never taken as ANY (it would drop everything)
        raise InvalidArgument("spec.selector.protocol", "ANY, TCP, UDP or ICMP", raw.protocol_value)
    protocol = raw.protocol
    if raw.ports and protocol not in (Protocol.ANY, Protocol.TCP, Protocol.UDP):
        raise InvalidArgument(
            "spec.selector.protocol", "TCP, UDP or ANY when ports are given", protocol.name
        )

    if raw.direction is None:
        raise InvalidArgument("spec.selector.direction", "EGRESS, INGRESS or BOTH", "unknown")
    direction = raw.direction
    if raw.direction_unspecified:
        direction = Direction.EGRESS if raw.kind in NETEM_ONLY else Direction.BOTH
    if not 0 <= raw.queue_limit <= MAX_QUEUE_LIMIT:
        raise InvalidArgument("spec.queue_limit_packets", f"0 (sized by the agent) to {MAX_QUEUE_LIMIT}",
                              raw.queue_limit)
    if netem is not None and raw.queue_limit:
        netem = replace(netem, limit=raw.queue_limit)
    if raw.mechanism is None:
        raise InvalidArgument("spec.mechanism", "UNSPECIFIED, EBPF_TC or NETEM", "unknown")
    if len(raw.label) > limits.max_label:
        raise InvalidArgument("spec.label", f"at most {limits.max_label} characters", len(raw.label))

    return FaultSpec(
        kind=raw.kind,
        selector=Selector(
            interface=raw.interface,
            direction=direction,
            peers=peers,
            ports=tuple(dict.fromkeys(raw.ports)),  # dedupe, keep order
            protocol=protocol,
        ),
        lease_ms=raw.lease_ms,
        mechanism=raw.mechanism,
        loss_percent=loss,
        label=raw.label,
        netem=netem,
        ebpf_cannot=ebpf_cannot,
    )


def _peers(raw: RawSpec, limits: Limits) -> tuple[Network, ...]:
    if len(raw.peer_cidrs) > limits.max_peers:
        raise InvalidArgument("spec.selector.peer_cidrs", f"at most {limits.max_peers} CIDRs", len(raw.peer_cidrs))
    return tuple(parse_cidr(c, f"spec.selector.peer_cidrs[{i}]") for i, c in enumerate(raw.peer_cidrs))


def _ports(raw: RawSpec, limits: Limits) -> None:
    if len(raw.ports) > limits.max_ports:
        raise InvalidArgument("spec.selector.ports", f"at most {limits.max_ports} ports", len(raw.ports))
    for i, port in enumerate(raw.ports):
        if not 1 <= port <= 65535:
            raise InvalidArgument(f"spec.selector.ports[{i}]", "1 to 65535", port)


def _host_fault(raw: RawSpec, limits: Limits) -> FaultSpec:
    """RESET and PROCESS: faults on this host's sockets and processes, not on an interface."""
    assert raw.kind is not None
    name = raw.kind.name
    if raw.interface:
        acts_on = "sockets" if raw.kind is FaultKind.RESET else "processes"
        raise InvalidArgument("spec.selector.interface",
                              f"empty for {name} (it acts on the host's {acts_on}, not an interface)", raw.interface)
    expected = Mechanism.SIGNAL if raw.kind is FaultKind.PROCESS else Mechanism.SOCK_DESTROY
    if raw.mechanism not in (Mechanism.AUTO, expected):
        raise InvalidArgument("spec.mechanism", f"UNSPECIFIED or {expected.name} for {name}",
                              raw.mechanism.name if raw.mechanism else "unknown")
    if len(raw.label) > limits.max_label:
        raise InvalidArgument("spec.label", f"at most {limits.max_label} characters", len(raw.label))
    common = dict(kind=raw.kind, lease_ms=raw.lease_ms, mechanism=raw.mechanism, label=raw.label,
                  ebpf_cannot=f"{name} is not a packet fault")
    if raw.kind is FaultKind.RESET:
        peers = _peers(raw, limits)
        _ports(raw, limits)
        if not peers and not raw.ports:
            raise InvalidArgument("spec.selector", "peer_cidrs and/or ports for RESET (never every connection)",
                                  "neither")
        if raw.protocol not in (Protocol.ANY, Protocol.TCP):
            raise InvalidArgument("spec.selector.protocol", "TCP or ANY for RESET (TCP connections only)",
                                  raw.protocol.name if raw.protocol else "unknown")
        return FaultSpec(selector=Selector("", Direction.BOTH, peers, tuple(dict.fromkeys(raw.ports)), Protocol.TCP),
                         **common)  # type: ignore[arg-type]
    if raw.peer_cidrs or raw.ports:
        raise InvalidArgument("spec.selector", "empty for PROCESS (process.target names the processes)",
                              "peer_cidrs" if raw.peer_cidrs else "ports")
    if raw.params is None:
        raise InvalidArgument("spec.process", "the process parameters: action and target", "unset")
    action = raw.process_action
    if action is None:
        raise InvalidArgument("spec.process.action", "PAUSE, STOP, KILL or RESTART_UNIT", "unspecified or unknown")
    by, value = raw.target_by, raw.target_value
    if by is None:
        raise InvalidArgument("spec.process.target", "one of pid, name, cmdline, cgroup, unit", "unset")
    where = f"spec.process.target.{by.value}"
    if by is TargetBy.PID and not (value.isdigit() and 2 <= int(value) <= MAX_PID):
        raise InvalidArgument(where, f"2 to {MAX_PID} (PID 1 is never a target)", value)
    if by is TargetBy.NAME and not (1 <= len(value) <= 15 and "/" not in value and "\0" not in value):
        raise InvalidArgument(where, "a process name (comm) of 1 to 15 characters, no '/'", value)
    if by is TargetBy.CMDLINE and not (1 <= len(value) <= 200 and "\0" not in value):
        raise InvalidArgument(where, "1 to 200 characters of the command line", value)
    if by is TargetBy.CGROUP and not (len(value) <= 200 and CGROUP_RE.match(value)
                                      and not {".", ".."} & set(value.split("/"))):
        # "." would be the root cgroup: every process on the host.
        raise InvalidArgument(where, "a cgroup path below /sys/fs/cgroup's root, e.g. system.slice/x.service "
                              "(no '.' or '..')", value)
    if by is TargetBy.UNIT and not UNIT_RE.match(value):
        raise InvalidArgument(where, "a systemd unit name ending in .service or .scope", value)
    if action is ProcessAction.RESTART_UNIT and by is not TargetBy.UNIT:
        raise InvalidArgument("spec.process.target", "a unit for RESTART_UNIT", by.value)
    if raw.restart and action not in (ProcessAction.KILL, ProcessAction.STOP):
        raise InvalidArgument("spec.process.restart", f"only with action KILL or STOP, not {action.name}",
                              raw.restart)
    if raw.restart and not RESTART_NAME_RE.match(raw.restart):
        raise InvalidArgument("spec.process.restart", "the name of one of the host policy's restart_commands "
                              "(1 to 64 of A-Z a-z 0-9 . _ -)", raw.restart)
    return FaultSpec(selector=Selector(""), process=ProcessSpec(action, by, value, raw.restart),
                     **common)  # type: ignore[arg-type]


def _percent(value: float | None, where: str, *, zero_ok: bool = False) -> float:
    low = "0 <=" if zero_ok else "0 <"
    if value is None or math.isnan(value) or not (0 <= value <= 100 if zero_ok else 0 < value <= 100):
        raise InvalidArgument(where, f"{low} percent <= 100", value)
    return float(value)


def _kind_params(raw: RawSpec) -> tuple[float, Netem | None, str]:
    """(loss percent for eBPF, what netem would do, why eBPF cannot) for the request's kind."""
    kind, corr = raw.kind, raw.correlation
    if kind is FaultKind.DISCONNECT:
        return 0.0, Netem(loss=100.0), ""
    if kind is FaultKind.LOSS:
        corr = _percent(corr, "spec.loss.correlation_percent", zero_ok=True)
        if raw.gilbert_elliott is not None:
            if raw.loss_percent:
                raise InvalidArgument("spec.loss.percent", "unset when gilbert_elliott is given", raw.loss_percent)
            p, r, bad, good = raw.gilbert_elliott
            ge = GilbertElliott(
                p=_percent(p, "spec.loss.gilbert_elliott.p_percent"),
                r=_percent(r, "spec.loss.gilbert_elliott.r_percent"),
                loss_in_bad=_percent(bad, "spec.loss.gilbert_elliott.loss_in_bad_percent", zero_ok=True),
                loss_in_good=_percent(good, "spec.loss.gilbert_elliott.loss_in_good_percent", zero_ok=True),
            )
            return 0.0, Netem(gilbert_elliott=ge), "the Gilbert-Elliott model needs netem"
        loss = _percent(raw.loss_percent, "spec.loss.percent")
        return loss, Netem(loss=loss, loss_correlation=corr), ("loss correlation needs netem" if corr else "")
    if kind is FaultKind.DELAY:
        d = raw.delay_ms
        if d is None or math.isnan(d) or not 0 < d <= MAX_DELAY_MS:
            raise InvalidArgument("spec.delay.delay_ms", f"0 < delay_ms <= {MAX_DELAY_MS:g}", d)
        j = raw.jitter_ms
        if math.isnan(j) or not 0 <= j <= d:
            raise InvalidArgument("spec.delay.jitter_ms", f"0 <= jitter_ms <= delay_ms ({d:g})", j)
        corr = _percent(corr, "spec.delay.correlation_percent", zero_ok=True)
        if corr and not j:
            raise InvalidArgument("spec.delay.correlation_percent", "0 unless jitter_ms > 0", corr)
        if raw.distribution is None:
            raise InvalidArgument("spec.delay.distribution", "UNIFORM, NORMAL, PARETO or PARETONORMAL", "unknown")
        if raw.distribution is not Distribution.UNIFORM and not j:
            raise InvalidArgument("spec.delay.distribution", "UNIFORM unless jitter_ms > 0", raw.distribution.name)
        return 0.0, Netem(
            delay_ns=round(d * 1e6), jitter_ns=round(j * 1e6), delay_correlation=corr,
            distribution=raw.distribution, preserve_order=raw.preserve_order,
        ), "delay needs netem"
    if kind in (FaultKind.DUPLICATE, FaultKind.CORRUPT):
        name = kind.name.lower()
        pct = _percent(raw.percent, f"spec.{name}.percent")
        corr = _percent(corr, f"spec.{name}.correlation_percent", zero_ok=True)
        netem = (Netem(duplicate=pct, duplicate_correlation=corr) if kind is FaultKind.DUPLICATE
                 else Netem(corrupt=pct, corrupt_correlation=corr))
        return 0.0, netem, f"{name} needs netem"
    if kind is FaultKind.REORDER:
        pct = _percent(raw.percent, "spec.reorder.percent")
        corr = _percent(corr, "spec.reorder.correlation_percent", zero_ok=True)
        d = raw.delay_ms
        if d is None or math.isnan(d) or not 0 < d <= MAX_DELAY_MS:
            raise InvalidArgument("spec.reorder.delay_ms",
                                  f"0 < delay_ms <= {MAX_DELAY_MS:g} (reordering needs a delay to jump)", d)
        if not 0 <= raw.gap <= MAX_GAP:
            raise InvalidArgument("spec.reorder.gap", f"0 (random) to {MAX_GAP}", raw.gap)
        return 0.0, Netem(delay_ns=round(d * 1e6), reorder=pct, reorder_correlation=corr,
                          reorder_gap=raw.gap), "reorder needs netem"
    if kind is FaultKind.RATE:
        if not MIN_RATE_BPS <= raw.rate_bps <= MAX_RATE_BPS:
            raise InvalidArgument("spec.rate.bits_per_second", f"{MIN_RATE_BPS} to {MAX_RATE_BPS:.0e}", raw.rate_bps)
        if not -128 <= raw.packet_overhead <= 128:
            raise InvalidArgument("spec.rate.packet_overhead_bytes", "-128 to 128", raw.packet_overhead)
        return 0.0, Netem(rate_bps=raw.rate_bps, packet_overhead=raw.packet_overhead), "rate needs netem"
    return 0.0, None, f"{kind.name} is not a network fault the eBPF mechanism does"

