"""AgentClient: one agent over gRPC, every call with a deadline, statuses as typed errors.
(Requests are built in agents/spec.py; addresses and mTLS in agents/channel.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import grpc

from faultline.controller.agents.channel import (  # noqa: F401  (re-exported: the client's API)
    AGENT_NAME,
    DEFAULT_PORT,
    LAB_INDEX,
    TLS_ENV,
    agent_address,
    lab_tls_dir,
    open_channel,
    tls_for,
)
from faultline.controller.agents.errors import (  # noqa: F401  (re-exported)
    ERRORS,
    AgentError,
    AgentUnreachable,
    Forbidden,
    InvalidRequest,
    UnknownFault,
    Unsupported,
    error_of,
)
from faultline.controller.agents.events import TcpEvent
from faultline.v1 import agent_pb2 as pb
from faultline.v1 import agent_pb2_grpc as pb_grpc

DEFAULT_TIMEOUT_S = 10.0


class Watch:
    """An open WatchEvents stream. Made by AgentClient.watch once the probes are attached
    (its `watching` is the stream's first item); iterate for the rest; cancel() ends it."""

    def __init__(self, address: str, call: grpc.Call) -> None:
        self.address, self._call = address, call
        self._cancelled = False
        try:
            first = next(call)  # type: ignore[call-overload]
        except grpc.RpcError as e:
            raise error_of(address, e) from None
        self.watching: pb.Watching = first.watching
        self.watching_at: pb.Timestamp = first.at

    def __iter__(self) -> Iterator[pb.WatchEvent]:
        try:
            yield from self._call  # type: ignore[misc]
        except grpc.RpcError as e:
            if self._cancelled and e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                return
            raise error_of(self.address, e) from None

    def header(self) -> pb.WatchEvent:
        """What the stream began with (the probes attached, this host's addresses), as an item."""
        return pb.WatchEvent(at=self.watching_at, watching=self.watching)

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.cancel()


class WatchRecorder:
    """Reads a Watch on a thread of its own, keeping every item, so a test or a scenario can
    go on and look at what arrived (wait_for)."""

    def __init__(self, watch: Watch, on_tcp: Callable[[TcpEvent], None] = lambda _: None) -> None:
        self.watch = watch
        self.on_tcp = on_tcp
        self.items: list[pb.WatchEvent] = []
        self.error: AgentError | None = None
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._read, name="watch-recorder", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for item in self.watch:
                if item.HasField("tcp"):
                    self.on_tcp(TcpEvent.of(item))
                with self._cond:
                    self.items.append(item)
                    self._cond.notify_all()
        except AgentError as e:
            self.error = e
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[pb.WatchEvent], bool], timeout_s: float,
                 after: int = 0) -> pb.WatchEvent | None:
        """The first item (from index `after`) that satisfies predicate, waiting up to timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for item in self.items[after:]:
                    if predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0 or self._done:
                    return None
                self._cond.wait(left)

    def tcp(self) -> list[TcpEvent]:
        """The TCP events so far, as plain values."""
        with self._cond:
            return [TcpEvent.of(i) for i in self.items if i.HasField("tcp")]

    def stop(self) -> list[pb.WatchEvent]:
        self.watch.cancel()
        self._thread.join(timeout=5)
        return self.items


class AgentClient:
    def __init__(self, address: str, timeout_s: float = DEFAULT_TIMEOUT_S, tls_dir: Path | str | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._tls_dir = tls_dir
        self._channel = open_channel(address, tls_dir)
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
            raise self.explained(error_of(self.address, e)) from None

    def explained(self, e: AgentError) -> AgentError:
        """An UNAVAILABLE that TLS explains, with the explanation (tlsdiag) instead of gRPC's transport text."""
        if e.code is not grpc.StatusCode.UNAVAILABLE:
            return e
        from faultline.controller.agents.tlsdiag import diagnose

        tls, name = tls_for(self.address, self._tls_dir)
        why = diagnose(self.address, tls, name, timeout_s=min(self.timeout_s, 3.0))
        return AgentUnreachable(self.address, e.code, why) if why else e

    def capabilities(self) -> pb.Capabilities:
        return self._call("GetCapabilities", pb.GetCapabilitiesRequest())  # type: ignore[return-value]

    def apply(self, spec: pb.FaultSpec, start_at_realtime_ns: int = 0, wait_s: float = 0.0) -> pb.ApplyFaultResponse:
        """Apply now, or at start_at on the agent's own clock (coordinated start: the caller
        corrects for the agent's offset, and says how long the wait is so the deadline covers it)."""
        req = pb.ApplyFaultRequest(spec=spec, start_at_realtime_ns=start_at_realtime_ns)
        return self._call("ApplyFault", req, self.timeout_s + wait_s)  # type: ignore[return-value]

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

    def sync_clock(self, t1_realtime_ns: int) -> pb.SyncClockResponse:
        return self._call("SyncClock", pb.SyncClockRequest(t1_realtime_ns=t1_realtime_ns))  # type: ignore[return-value]

    def watch(self, filt: pb.WatchFilter | None = None, ready_timeout_s: float | None = None) -> Watch:
        """Open a watch stream; returns once the agent's probes are attached. No deadline on
        the stream itself: it lasts until cancelled."""
        call = self._stub.WatchEvents(pb.WatchEventsRequest(filter=filt or pb.WatchFilter()))
        timer = threading.Timer(ready_timeout_s or self.timeout_s, call.cancel)
        timer.start()
        try:
            return Watch(self.address, call)
        except AgentError as e:
            raise self.explained(e) from None
        finally:
            timer.cancel()

    def summarize(self, filt: pb.WatchFilter | None = None, since_realtime_ns: int = 0) -> pb.SummarizeFlowsResponse:
        req = pb.SummarizeFlowsRequest(filter=filt or pb.WatchFilter(), since_realtime_ns=since_realtime_ns)
        return self._call("SummarizeFlows", req)  # type: ignore[return-value]
