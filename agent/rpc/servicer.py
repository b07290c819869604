"""The gRPC servicer: translation only. Every domain error maps to one status here."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

import faultline
from faultline.agent.domain import clock
from faultline.agent.domain.audit import bounded
from faultline.agent.domain.engine import PROGRAM_WAIT_S
from faultline.agent.domain.errors import (
    Exhausted,
    FailedPrecondition,
    FaultlineError,
    InvalidArgument,
    KernelError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from faultline.agent.domain.spec import FaultState
from faultline.agent.rpc import convert
from faultline.agent.runtime import AgentRuntime
from faultline.v1 import agent_pb2 as pb
from faultline.v1 import agent_pb2_grpc as pb_grpc

if TYPE_CHECKING:  # cryptography loads only where TLS is used
    from faultline.agent.rpc.tls import ServerTls

log = logging.getLogger(__name__)

# The one table: domain error -> gRPC status. Anything else is a bug and says so.
STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    NotFound: grpc.StatusCode.NOT_FOUND,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Exhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    KernelError: grpc.StatusCode.INTERNAL,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}
MESSAGE_MAX = 1000  # characters of an error message (a longer one is cut, with its length and hash)
# A kernel change is not started with less time than this left on the caller's deadline.
MIN_TIME_FOR_CHANGE_S = 0.05
# A watch stream wakes this often when idle, to notice its client has gone.
WATCH_WAKE_S = 0.2

F = TypeVar("F", bound=Callable[..., Any])


def _abort(method: str, e: Exception, context: grpc.ServicerContext) -> None:
    """Called from an except block: the status for e, logged (with its traceback if a bug)."""
    # Bounded: a message echoes what was sent (a 1 MB fault id), and gRPC refuses status
    # details over 16 kB (the client would see RESOURCE_EXHAUSTED instead of the answer).
    if isinstance(e, FaultlineError):
        code = STATUS.get(type(e), grpc.StatusCode.INTERNAL)
        log.info("%s refused: %s: %s", method, code.name, bounded(str(e)))
        context.abort(code, bounded(str(e), MESSAGE_MAX))
    log.exception("%s failed", method)
    context.abort(grpc.StatusCode.INTERNAL, bounded(f"agent bug: {type(e).__name__}: {e}", MESSAGE_MAX))


def translated(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(self: AgentServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as e:
            _abort(fn.__name__, e, context)

    return wrapper  # type: ignore[return-value]


def translated_stream(fn: F) -> F:
    """translated, for server-streaming methods: errors surface while the generator runs."""
    @functools.wraps(fn)
    def wrapper(self: AgentServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from fn(self, request, context)
        except Exception as e:
            _abort(fn.__name__, e, context)

    return wrapper  # type: ignore[return-value]


def _require_time(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining < MIN_TIME_FOR_CHANGE_S:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "too little of the deadline left to change the kernel")


class AgentServicer(pb_grpc.AgentServicer):
    def __init__(self, runtime: AgentRuntime, tls: ServerTls | None = None) -> None:
        self.rt = runtime
        self.tls = tls
        self.engine = runtime.engine
        self.hub = runtime.hub
        self.started_at = time.time_ns()

    @translated
    def GetCapabilities(self, request: pb.GetCapabilitiesRequest, context: grpc.ServicerContext) -> pb.Capabilities:
        offered = self.engine.offered()
        policy = self.engine.policy
        kinds = []
        for kind, mechs in offered.items():
            reason = "" if mechs else self.engine.why_not(kind)
            kinds.append(pb.KindSupport(kind=convert.KIND_PB[kind],
                                        mechanisms=[convert.MECHANISM_PB[m] for m in mechs], reason=reason))
        return pb.Capabilities(
            agent_version=faultline.__version__,
            kernel_release=self.rt.kernel_release,
            features=[pb.Feature(name=f.name, available=f.available, reason=f.reason) for f in self.rt.features],
            kinds=kinds,
            excluded_ports=list(self.rt.config.all_excluded_ports()),
            max_lease_ms=min(self.engine.limits.max_lease_ms, round(policy.max_lease_s * 1000)),
            min_lease_ms=self.engine.limits.min_lease_ms,
            policy_source=policy.source, max_loss_percent=policy.max_loss_percent, max_delay_ms=policy.max_delay_ms,
            max_processes=policy.max_processes,
            allowed_interfaces=sorted(policy.interfaces or self.rt.config.allowed_interfaces or ()),
            allowed_peer_cidrs=[str(n) for n in policy.peer_cidrs or ()],
            process_faults_allowed=policy.allow_process_faults,
        )

    @translated
    def ApplyFault(self, request: pb.ApplyFaultRequest, context: grpc.ServicerContext) -> pb.ApplyFaultResponse:
        raw = convert.raw_spec(request.spec)
        _require_time(context)
        start_at = request.start_at_realtime_ns
        remaining = context.time_remaining()
        if start_at and remaining is not None and \
                (start_at - clock.now().realtime_ns) / 1e9 > remaining - MIN_TIME_FOR_CHANGE_S:
            raise InvalidArgument("start_at_realtime_ns", "an instant before the call's deadline", start_at)
        # A program still compiling may take some of the deadline; the change keeps the rest.
        wait_s = max(0.0, remaining - max(1.0, remaining / 5)) if remaining is not None else PROGRAM_WAIT_S
        f = self.engine.apply(raw, start_at, wait_s=wait_s)
        return pb.ApplyFaultResponse(
            fault_id=f.fault_id,
            mechanism=convert.MECHANISM_PB[f.mechanism],
            applied_at=convert.stamp(f.applied_at),
            lease_expires_at=convert.stamp(f.lease_expires_at),
            state=convert.STATE[f.state],
            starts_at=convert.stamp(f.starts_at),
        )

    @translated
    def HealFault(self, request: pb.HealFaultRequest, context: grpc.ServicerContext) -> pb.HealFaultResponse:
        return pb.HealFaultResponse(fault=convert.fault(self.engine.heal(request.fault_id)))

    @translated
    def HealAll(self, request: pb.HealAllRequest, context: grpc.ServicerContext) -> pb.HealAllResponse:
        return pb.HealAllResponse(faults=[convert.fault(f) for f in self.engine.heal_all(FaultState.HEALED)])

    @translated
    def ListFaults(self, request: pb.ListFaultsRequest, context: grpc.ServicerContext) -> pb.ListFaultsResponse:
        faults = self.engine.list(request.include_healed)
        return pb.ListFaultsResponse(faults=[convert.fault(f) for f in faults], now=convert.stamp(clock.now()))

    @translated
    def RenewLease(self, request: pb.RenewLeaseRequest, context: grpc.ServicerContext) -> pb.RenewLeaseResponse:
        f = self.engine.renew(request.fault_id, request.lease_ms)
        return pb.RenewLeaseResponse(lease_expires_at=convert.stamp(f.lease_expires_at))

    @translated
    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        not_after = self.tls.material.not_after_ns if self.tls else 0
        verdict = self.rt.health(not_after)
        return pb.HealthResponse(
            status=verdict.status, reasons=verdict.reasons, cert_not_after_realtime_ns=not_after,
            agent_version=faultline.__version__,
            active_faults=self.engine.active_count(),
            now=convert.stamp(clock.now()),
            started_at_realtime_ns=self.started_at,
            netns=self.rt.config.netns,
            programs=[pb.ProgramStatus(name=s.name, state=s.state, seconds=s.seconds, error=s.error)
                      for s in self.rt.program_status()],
            heal_failed=self.engine.heal_failed_count(),
            pending_undos=self.rt.pending_undos(),
            audit_error=self.rt.audit_error(),
        )

    @translated_stream
    def WatchEvents(self, request: pb.WatchEventsRequest, context: grpc.ServicerContext) -> Iterator[pb.WatchEvent]:
        remaining = context.time_remaining()
        w = self.hub.open(convert.watch_filter(request.filter),
                          wait_s=PROGRAM_WAIT_S if remaining is None else min(remaining, PROGRAM_WAIT_S))
        context.add_callback(w.cancel)  # the client went away: stop waiting for events
        try:
            while context.is_active():
                item = w.next(timeout_s=WATCH_WAKE_S)
                if item is not None:
                    yield convert.stream_item(item)
                elif w.closed.is_set():
                    break
        finally:
            self.hub.close_watcher(w)

    @translated
    def SummarizeFlows(self, request: pb.SummarizeFlowsRequest,
                       context: grpc.ServicerContext) -> pb.SummarizeFlowsResponse:
        f = convert.watch_filter(request.filter)
        flows = self.hub.summary(f, request.since_realtime_ns)
        matched, lost = self.hub.totals()
        return pb.SummarizeFlowsResponse(flows=[convert.flow_summary(s) for s in flows],
                                         watchers=self.hub.watching(), events_matched=matched, events_lost=lost)

    @translated
    def SyncClock(self, request: pb.SyncClockRequest, context: grpc.ServicerContext) -> pb.SyncClockResponse:
        received = clock.now()
        return pb.SyncClockResponse(t1_realtime_ns=request.t1_realtime_ns, received=convert.stamp(received),
                                    sent=convert.stamp(clock.now()))
