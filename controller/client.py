"""AgentClient: one agent over gRPC, every call with a deadline, statuses as typed errors."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import grpc
from faultline.v1 import agent_pb2 as pb
from faultline.v1 import agent_pb2_grpc as pb_grpc

DEFAULT_TIMEOUT_S = 10.0


class AgentError(Exception):
    """The agent refused or failed a call. `code` is the gRPC status."""

    def __init__(self, agent: str, code: grpc.StatusCode, message: str) -> None:
        self.agent, self.code, self.message = agent, code, message
        super().__init__(f"{agent}: {code.name}: {message}")


class InvalidRequest(AgentError): ...
class Unsupported(AgentError): ...
class UnknownFault(AgentError): ...
class AgentUnreachable(AgentError): ...


# The one table on this side: status -> exception type.
ERRORS: dict[grpc.StatusCode, type[AgentError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: Unsupported,
    grpc.StatusCode.NOT_FOUND: UnknownFault,
    grpc.StatusCode.UNAVAILABLE: AgentUnreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: AgentUnreachable,
}

KINDS = {
    "disconnect": pb.FAULT_KIND_DISCONNECT, "loss": pb.FAULT_KIND_LOSS, "delay": pb.FAULT_KIND_DELAY,
    "duplicate": pb.FAULT_KIND_DUPLICATE, "corrupt": pb.FAULT_KIND_CORRUPT, "reorder": pb.FAULT_KIND_REORDER,
    "rate": pb.FAULT_KIND_RATE,
}
# "" leaves the direction to the agent: BOTH for disconnect/loss, EGRESS for the netem-only kinds.
DIRECTIONS = {"": pb.DIRECTION_UNSPECIFIED, "egress": pb.DIRECTION_EGRESS, "ingress": pb.DIRECTION_INGRESS,
              "both": pb.DIRECTION_BOTH}
DISTRIBUTIONS = {"uniform": pb.DELAY_DISTRIBUTION_UNIFORM, "normal": pb.DELAY_DISTRIBUTION_NORMAL,
                 "pareto": pb.DELAY_DISTRIBUTION_PARETO, "paretonormal": pb.DELAY_DISTRIBUTION_PARETONORMAL}
PROTOCOLS = {"any": pb.PROTOCOL_ANY, "tcp": pb.PROTOCOL_TCP, "udp": pb.PROTOCOL_UDP, "icmp": pb.PROTOCOL_ICMP}
MECHANISMS = {"auto": pb.MECHANISM_UNSPECIFIED, "ebpf": pb.MECHANISM_EBPF_TC, "netem": pb.MECHANISM_NETEM}


def fault_spec(
    kind: str,
    interface: str,
    *,
    peers: Sequence[str] = (),
    ports: Sequence[int] = (),
    direction: str = "",
    protocol: str = "any",
    lease_s: float = 30.0,
    loss_percent: float | None = None,
    mechanism: str = "auto",
    label: str = "",
    percent: float = 0.0,
    correlation: float = 0.0,
    gilbert_elliott: tuple[float, float, float, float] | None = None,
    delay_ms: float = 0.0,
    jitter_ms: float = 0.0,
    distribution: str = "uniform",
    preserve_order: bool = False,
    gap: int = 0,
    rate_bps: int = 0,
    packet_overhead: int = 0,
    queue_limit: int = 0,
) -> pb.FaultSpec:
    """Build a FaultSpec from plain values; the agent validates ranges.

    `percent` is the probability for duplicate, corrupt and reorder (loss has `loss_percent`);
    `delay_ms` is the delay of delay and reorder faults.
    """
    spec = pb.FaultSpec(
        kind=KINDS[kind],
        selector=pb.Selector(
            interface=interface, direction=DIRECTIONS[direction], peer_cidrs=list(peers),
            ports=list(ports), protocol=PROTOCOLS[protocol],
        ),
        lease_ms=round(lease_s * 1000),
        mechanism=MECHANISMS[mechanism],
        label=label,
        queue_limit_packets=queue_limit,
    )
    if kind == "disconnect":
        spec.disconnect.SetInParent()
    elif kind == "loss":
        spec.loss.percent = loss_percent or 0.0
        spec.loss.correlation_percent = correlation
        if gilbert_elliott is not None:
            p, r, bad, good = gilbert_elliott
            spec.loss.gilbert_elliott.CopyFrom(pb.GilbertElliott(
                p_percent=p, r_percent=r, loss_in_bad_percent=bad, loss_in_good_percent=good))
    elif kind == "delay":
        spec.delay.CopyFrom(pb.DelayParams(delay_ms=delay_ms, jitter_ms=jitter_ms, correlation_percent=correlation,
                                           distribution=DISTRIBUTIONS[distribution], preserve_order=preserve_order))
    elif kind == "duplicate":
        spec.duplicate.CopyFrom(pb.DuplicateParams(percent=percent, correlation_percent=correlation))
    elif kind == "corrupt":
        spec.corrupt.CopyFrom(pb.CorruptParams(percent=percent, correlation_percent=correlation))
    elif kind == "reorder":
        spec.reorder.CopyFrom(pb.ReorderParams(percent=percent, correlation_percent=correlation,
                                               delay_ms=delay_ms, gap=gap))
    elif kind == "rate":
        spec.rate.CopyFrom(pb.RateParams(bits_per_second=rate_bps, packet_overhead_bytes=packet_overhead))
    return spec


class AgentClient:
    def __init__(self, address: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.AgentStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _call(self, method: str, request: object, timeout_s: float | None = None) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            raise ERRORS.get(code, AgentError)(self.address, code, e.details() or "") from None  # type: ignore[attr-defined]

    def capabilities(self) -> pb.Capabilities:
        return self._call("GetCapabilities", pb.GetCapabilitiesRequest())  # type: ignore[return-value]

    def apply(self, spec: pb.FaultSpec) -> pb.ApplyFaultResponse:
        return self._call("ApplyFault", pb.ApplyFaultRequest(spec=spec))  # type: ignore[return-value]

    def heal(self, fault_id: str) -> pb.Fault:
        return self._call("HealFault", pb.HealFaultRequest(fault_id=fault_id)).fault  # type: ignore[attr-defined]

    def heal_all(self) -> list[pb.Fault]:
        return list(self._call("HealAll", pb.HealAllRequest()).faults)  # type: ignore[attr-defined]

    def list(self, include_healed: bool = False) -> list[pb.Fault]:
        resp = self._call("ListFaults", pb.ListFaultsRequest(include_healed=include_healed))
        return list(resp.faults)  # type: ignore[attr-defined]

    def renew(self, fault_id: str, lease_s: float) -> pb.RenewLeaseResponse:
        req = pb.RenewLeaseRequest(fault_id=fault_id, lease_ms=round(lease_s * 1000))
        return self._call("RenewLease", req)  # type: ignore[return-value]

    def health(self, timeout_s: float | None = None) -> pb.HealthResponse:
        return self._call("Health", pb.HealthRequest(), timeout_s)  # type: ignore[return-value]
