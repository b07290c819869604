"""Requests as the agents take them, built from plain values: a fault (fault_spec: which packets,
and the kind's own parameters as one typed value), a process fault (process_spec), a watch
filter (watch_filter). Past this package nothing reads a FaultSpec's fields (format.spec_dict
renders one for a journal). The agent validates ranges; these only shape the request.

    fault_spec(Loss(percent=20), "lab0", peers=["10.77.0.2/32"], ports=[4002], lease_s=5)
    fault_spec(params("delay", delay_ms=100), "lab0")      # a kind named at run time
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from faultline.v1 import agent_pb2 as pb

FaultSpec = pb.FaultSpec

KINDS = {
    "disconnect": pb.FAULT_KIND_DISCONNECT, "loss": pb.FAULT_KIND_LOSS, "delay": pb.FAULT_KIND_DELAY,
    "duplicate": pb.FAULT_KIND_DUPLICATE, "corrupt": pb.FAULT_KIND_CORRUPT, "reorder": pb.FAULT_KIND_REORDER,
    "rate": pb.FAULT_KIND_RATE, "reset": pb.FAULT_KIND_RESET, "process": pb.FAULT_KIND_PROCESS,
}
PROCESS_ACTIONS = {"pause": pb.PROCESS_ACTION_PAUSE, "kill": pb.PROCESS_ACTION_KILL,
                   "restart-unit": pb.PROCESS_ACTION_RESTART_UNIT, "stop": pb.PROCESS_ACTION_STOP}
TARGET_BY = ("pid", "name", "cmdline", "cgroup", "unit")
# "" leaves the direction to the agent: BOTH for disconnect/loss, EGRESS for the netem-only kinds.
DIRECTIONS = {"": pb.DIRECTION_UNSPECIFIED, "egress": pb.DIRECTION_EGRESS, "ingress": pb.DIRECTION_INGRESS,
              "both": pb.DIRECTION_BOTH}
DISTRIBUTIONS = {"uniform": pb.DELAY_DISTRIBUTION_UNIFORM, "normal": pb.DELAY_DISTRIBUTION_NORMAL,
                 "pareto": pb.DELAY_DISTRIBUTION_PARETO, "paretonormal": pb.DELAY_DISTRIBUTION_PARETONORMAL}
PROTOCOLS = {"any": pb.PROTOCOL_ANY, "tcp": pb.PROTOCOL_TCP, "udp": pb.PROTOCOL_UDP, "icmp": pb.PROTOCOL_ICMP}
EVENT_KINDS = {"state": pb.EVENT_KIND_STATE, "retransmit": pb.EVENT_KIND_RETRANSMIT,
               "reset-sent": pb.EVENT_KIND_RESET_SENT, "reset-received": pb.EVENT_KIND_RESET_RECEIVED,
               "rtt": pb.EVENT_KIND_RTT}
MECHANISMS = {"auto": pb.MECHANISM_UNSPECIFIED, "ebpf": pb.MECHANISM_EBPF_TC, "netem": pb.MECHANISM_NETEM,
              "signal": pb.MECHANISM_SIGNAL, "sock-destroy": pb.MECHANISM_SOCK_DESTROY}


# -- each network fault kind's own parameters -----------------------------------------------
@dataclass(frozen=True)
class Disconnect:
    kind: ClassVar[str] = "disconnect"

    def fill(self, spec: pb.FaultSpec) -> None:
        spec.disconnect.SetInParent()


@dataclass(frozen=True)
class Reset:
    kind: ClassVar[str] = "reset"

    def fill(self, spec: pb.FaultSpec) -> None:
        spec.reset.SetInParent()


@dataclass(frozen=True)
class Loss:
    kind: ClassVar[str] = "loss"
    percent: float = 0.0
    correlation: float = 0.0
    gilbert_elliott: tuple[float, float, float, float] | None = None  # p, r, loss in bad, loss in good (%)

    def fill(self, spec: pb.FaultSpec) -> None:
        spec.loss.percent, spec.loss.correlation_percent = self.percent, self.correlation
        if self.gilbert_elliott is not None:
            p, r, bad, good = self.gilbert_elliott
            spec.loss.gilbert_elliott.CopyFrom(pb.GilbertElliott(
                p_percent=p, r_percent=r, loss_in_bad_percent=bad, loss_in_good_percent=good))


@dataclass(frozen=True)
class Delay:
    kind: ClassVar[str] = "delay"
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    correlation: float = 0.0
    distribution: str = "uniform"
    preserve_order: bool = False

    def fill(self, spec: pb.FaultSpec) -> None:
        spec.delay.CopyFrom(pb.DelayParams(delay_ms=self.delay_ms, jitter_ms=self.jitter_ms,
                                           correlation_percent=self.correlation,
                                           distribution=DISTRIBUTIONS[self.distribution],
                                           preserve_order=self.preserve_order))


@dataclass(frozen=True)
class _EachPacket:
    """Something done to each matching packet with a probability (duplicate, corrupt)."""

    kind: ClassVar[str]
    percent: float = 0.0
    correlation: float = 0.0

    def fill(self, spec: pb.FaultSpec) -> None:
        part = getattr(spec, self.kind)
        part.SetInParent()  # the kind is set even when both values are 0
        part.percent, part.correlation_percent = self.percent, self.correlation


@dataclass(frozen=True)
class Duplicate(_EachPacket):
    kind: ClassVar[str] = "duplicate"


@dataclass(frozen=True)
class Corrupt(_EachPacket):
    kind: ClassVar[str] = "corrupt"


@dataclass(frozen=True)
class Reorder:
    kind: ClassVar[str] = "reorder"
    percent: float = 0.0
    correlation: float = 0.0
    delay_ms: float = 0.0  # the rest is delayed this much; `percent` go at once
    gap: int = 0

    def fill(self, spec: pb.FaultSpec) -> None:
        spec.reorder.CopyFrom(pb.ReorderParams(percent=self.percent, correlation_percent=self.correlation,
                                               delay_ms=self.delay_ms, gap=self.gap))


@dataclass(frozen=True)
class Rate:
    kind: ClassVar[str] = "rate"
    bits_per_second: int = 0
    packet_overhead: int = 0

    def fill(self, spec: pb.FaultSpec) -> None:
        spec.rate.CopyFrom(pb.RateParams(bits_per_second=self.bits_per_second,
                                         packet_overhead_bytes=self.packet_overhead))


Params = Disconnect | Reset | Loss | Delay | Duplicate | Corrupt | Reorder | Rate
PARAMS: dict[str, type[Params]] = {c.kind: c for c in (Disconnect, Reset, Loss, Delay, Duplicate, Corrupt, Reorder,
                                                        Rate)}


def params(kind: str, **values: Any) -> Params:
    """The parameters of a kind named at run time; a value the kind has no field for is an error."""
    cls = PARAMS.get(kind)
    if cls is None:
        raise ValueError(f"fault kind: one of {', '.join(PARAMS)}; got {kind!r}")
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - known):
        raise ValueError(f"{kind}: no parameter {', '.join(unknown)}; it takes {', '.join(sorted(known)) or 'none'}")
    return cls(**values)


def fault_spec(what: Params, interface: str, *, peers: Sequence[str] = (), ports: Sequence[int] = (),
               direction: str = "", protocol: str = "any", lease_s: float = 30.0, mechanism: str = "auto",
               label: str = "", queue_limit: int = 0) -> pb.FaultSpec:
    """A network fault: `what` (the kind and its parameters) on `interface`, for the packets the
    selector names (peers, ports, direction, protocol), healed by the agent after `lease_s`."""
    spec = pb.FaultSpec(
        kind=KINDS[what.kind],
        selector=pb.Selector(interface=interface, direction=DIRECTIONS[direction], peer_cidrs=list(peers),
                             ports=list(ports), protocol=PROTOCOLS[protocol]),
        lease_ms=round(lease_s * 1000), mechanism=MECHANISMS[mechanism], label=label,
        queue_limit_packets=queue_limit,
    )
    what.fill(spec)
    return spec


def process_spec(action: str, lease_s: float, *, restart: str = "", label: str = "",
                 **target: int | str) -> pb.FaultSpec:
    """A PROCESS fault: `action` pause|stop|kill|restart-unit, target one of pid=, name=, cmdline=, cgroup=,
    unit=; `restart`: the name of one of the host policy's restart_commands (kill, stop)."""
    if len(target) != 1 or next(iter(target)) not in TARGET_BY:
        raise ValueError(f"process target: exactly one of {', '.join(TARGET_BY)}; got {sorted(target)}")
    return pb.FaultSpec(kind=pb.FAULT_KIND_PROCESS, lease_ms=round(lease_s * 1000), label=label,
                        process=pb.ProcessParams(action=PROCESS_ACTIONS[action], target=pb.ProcessTarget(**target),
                                                 restart=restart))


def watch_filter(kinds: Sequence[str] = (), ports: Sequence[int] = (), peers: Sequence[str] = (),
                 rtt_interval_ms: int | None = None, fault_counters: bool = True) -> pb.WatchFilter:
    f = pb.WatchFilter(kinds=[EVENT_KINDS[k] for k in kinds], ports=list(ports), peer_cidrs=list(peers),
                       no_fault_counters=not fault_counters)
    if rtt_interval_ms is not None:
        f.rtt_interval_ms = rtt_interval_ms
    return f
