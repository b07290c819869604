"""ChaosIbkrClient: an ib_async client of an IB Gateway (the lab's TWS-protocol gateway or a real
paper-trading one), and the faults IBKR users meet, each a real kernel fault through the agent
on the gateway's host (never a mock, never a change to the client's code):

    ib = client.ib                                 # connected when the fixture hands it over
    ib = client.connect()                          # the same; after a disconnect, connects again
    client.inject_disconnect()                     # RESET: the gateway host's kernel aborts the API
                                                   #   connection, the client gets a RST at once
    client.inject_disconnect(mode="disconnect")    # DISCONNECT: every packet between them dropped for
                                                   #   duration_s; no close reaches either side
    client.inject_timeout_on_next_request()        # the gateway's answers dropped for longer than the
                                                   #   request timeout (they arrive after, retransmitted)
    client.inject_slow_response(delay_ms=1000)     # the gateway's answers delayed (netem)
    client.inject_upstream_outage(duration_s=10)   # gateway <-> IB's back end cut: 1100, then 1101/1102

Each inject_* returns once the fault is in the kernel (the ActiveFault, with its agent
counters) and heals it by itself after its duration, without blocking ib_async's event loop:
what the client sees is timed as it happens. `errors` is every error IB sent (code, text,
time), `disconnects` when the connection was seen lost; `wait_for` runs the client's loop
until a condition holds. close() heals whatever is still in and disconnects.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from faultline.controller.agents.spec import Delay, Disconnect, Params, Reset
from faultline.controller.suite.injector import ActiveFault, FaultInjector, InjectionRefused

if TYPE_CHECKING:
    import ib_async

T = TypeVar("T")
# Client ids the trading team's own clients are unlikely to use; each ChaosIbkrClient takes the
# next, as a session whose close a fault swallowed holds its id at the gateway for a while (326).
CLIENT_IDS = itertools.count(71)
RESET_WINDOW_S = 0.2      # a reset acts once; its fault record lasts this long
ANSWER_MARGIN_S = 1.0     # the timeout fault outlasts the request timeout by this much


@dataclass(frozen=True)
class IbkrTarget:
    """Where the gateway under test is and which agents can fault it."""

    address: str          # HOST:PORT of the gateway's API (4002: IB Gateway paper)
    gateway: str          # the agent on the gateway's host
    upstream: str = ""    # IB's back end as a fault target from the gateway host (HOST[:PORT]); "" unknown

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            raise InjectionRefused(f"IB gateway {self.address!r}: HOST:PORT, e.g. 127.0.0.1:4002")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class IbError:
    code: int
    text: str
    t_ns: int
    req_id: int = -1


@dataclass
class _Background:
    """A fault held open on a thread of its own for its duration, then healed."""

    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    fault: ActiveFault | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None


class ChaosIbkrClient:
    def __init__(self, injector: FaultInjector, target: IbkrTarget, config: dict[str, float | int],
                 client_id: int | None = None) -> None:
        self.injector, self.target, self.config = injector, target, config
        self.client_id = client_id if client_id is not None else next(CLIENT_IDS)
        self.ib: ib_async.IB | None = None
        self.errors: list[IbError] = []
        self.disconnects: list[int] = []
        self.faults: list[ActiveFault] = []
        self._held: list[_Background] = []
        self.connected_in_s: float | None = None  # the last connect + start-up sync

    # -- the client ---------------------------------------------------------------------------
    def connect(self, client_id: int | None = None, timeout_s: float | None = None,
                fresh: bool = False) -> ib_async.IB:
        """Connected, with ib_async's start-up sync done: at once if it already is (the fixture
        connects before a test gets it), else (re)connect; fresh: drop the connection and connect
        again. The request and connect timeouts come from the resilience config."""
        import ib_async

        if self.ib is not None and self.ib.isConnected() and not fresh and client_id in (None, self.client_id):
            return self.ib
        host, port = self.target.host_port
        if self.ib is None:
            self.ib = ib_async.IB()
            self.ib.errorEvent += self._on_error
            self.ib.disconnectedEvent += lambda: self.disconnects.append(time.time_ns())
        self.ib.RequestTimeout = float(self.config["request_timeout_s"])
        if self.ib.isConnected():
            self.ib.disconnect()
        t0 = time.monotonic()
        self.ib.connect(host, port, clientId=client_id or self.client_id,
                        timeout=timeout_s or float(self.config["connection_timeout_s"]))
        self.connected_in_s = time.monotonic() - t0
        return self.ib

    def _on_error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        self.errors.append(IbError(code, text, time.time_ns(), req_id))

    def codes(self, *wanted: int) -> list[int]:
        """The error codes received so far, in order (only `wanted` ones if given)."""
        return [e.code for e in self.errors if not wanted or e.code in wanted]

    def wait_for(self, cond: Callable[[], T], timeout_s: float, what: str) -> T:
        """Run the client's event loop until cond() is true (run_until)."""
        return run_until(self.ib, cond, timeout_s, what)

    # -- the faults ---------------------------------------------------------------------------
    def inject_disconnect(self, mode: str = "reset", duration_s: float = 5.0) -> ActiveFault:
        """mode "reset": the gateway host's kernel aborts the API connection (SOCK_DESTROY; the
        client gets a RST, its disconnected event fires). mode "disconnect": both directions
        dropped for duration_s (a cable pulled: nothing tells either side)."""
        if mode == "reset":
            return self._hold(Reset(), RESET_WINDOW_S, self._client_target())
        if mode == "disconnect":
            return self._hold(Disconnect(), duration_s, self._client_target())
        raise InjectionRefused(f"mode: 'reset' or 'disconnect'; got {mode!r}")

    def inject_timeout_on_next_request(self, duration_s: float | None = None) -> ActiveFault:
        """The gateway's packets to this client dropped (its egress) for the request timeout and
        a margin: the next request's answer does not come in time; it arrives after the heal,
        when TCP retransmits it. The client's requests still reach the gateway."""
        t = duration_s if duration_s is not None else float(self.config["request_timeout_s"]) + ANSWER_MARGIN_S
        return self.inject_half_open(t)

    def inject_half_open(self, duration_s: float) -> ActiveFault:
        """One direction blackholed (the gateway's answers), long: no close ever fires, so the
        client must notice from its own request timeouts."""
        return self._hold(Disconnect(), duration_s, self._client_target(), direction="egress")

    def inject_slow_response(self, delay_ms: float = 1000.0, duration_s: float = 10.0) -> ActiveFault:
        """The gateway's packets to this client delayed by delay_ms (netem on its egress); where
        the kernel has no netem the injector's `unavailable` says so (pytest: a skip)."""
        return self._hold(Delay(delay_ms=delay_ms), duration_s, self._client_target())

    def inject_upstream_outage(self, duration_s: float = 10.0) -> ActiveFault:
        """The gateway host cut from IB's back end: the gateway tells its clients 1100, then 1102
        (back within its keep window) or 1101 (subscriptions lost)."""
        if not self.target.upstream:
            raise InjectionRefused("no upstream: name IB's servers as seen from the gateway host "
                                   "(--faultline-ibkr-upstream HOST[:PORT])")
        return self._hold(Disconnect(), duration_s, self.target.upstream)

    def heal_all(self) -> None:
        """End every fault still in (each heals at once) and wait for it."""
        for b in self._held:
            b.stop.set()
        for b in self._held:
            if b.thread is not None:
                b.thread.join(30)
        failed = [b.error for b in self._held if b.error is not None and b.fault is not None]
        self._held.clear()
        if failed:  # the fault went in but its heal failed: say so, never leave it silent
            raise failed[0]

    def close(self) -> None:
        self.heal_all()
        if self.ib is not None and self.ib.isConnected():
            self.ib.disconnect()

    def _client_target(self) -> str:
        """This client's address as the gateway sees it, and the gateway's API port."""
        if self.ib is None or not self.ib.isConnected():
            raise InjectionRefused("connect() first: the fault is aimed at this client's connection")
        transport = self.ib.client.conn.transport
        local = transport.get_extra_info("sockname")[0] if transport is not None else ""
        if not local:
            raise InjectionRefused("the client's connection has no local address")
        return f"[{local}]:{self.target.host_port[1]}" if ":" in local else f"{local}:{self.target.host_port[1]}"

    def _hold(self, what: Params, duration_s: float, target: str, direction: str = "") -> ActiveFault:
        b = _Background()

        def run() -> None:
            try:
                with self.injector.fault(what, duration_s, target, [self.target.gateway], direction) as f:
                    b.fault = f
                    b.done.set()
                    b.stop.wait(duration_s)
            except BaseException as e:  # handed to the caller's thread (a skip included)
                b.error = e
            finally:
                b.done.set()

        b.thread = threading.Thread(target=run, name=f"ibkr-{what.kind}", daemon=True)
        self._held.append(b)
        b.thread.start()
        if not b.done.wait(60):  # the agents' calls have their own deadlines; this is the last one
            raise InjectionRefused(f"{what.kind}: not applied within 60 s")
        if b.error is not None:
            raise b.error
        assert b.fault is not None
        self.faults.append(b.fault)
        return b.fault

    def wait_healed(self, fault: ActiveFault, timeout_s: float = 60.0) -> ActiveFault:
        """Run the client's loop until this fault is healed (its final counters are then in)."""
        self.wait_for(lambda: fault.healed_ns is not None, timeout_s, f"heal of the {fault.kind}")
        return fault


def run_until(ib: ib_async.IB | None, cond: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run ib_async's loop until cond() is true; AssertionError naming `what` after timeout_s.
    An update wakes it early; an error event is not an update, hence the 50 ms cap on each wait."""
    deadline = time.monotonic() + timeout_s
    while not (got := cond()):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout_s} s")
        if ib is not None and ib.isConnected():
            try:
                ib.waitOnUpdate(timeout=min(left, 0.05))
            except ConnectionError:  # ib_async raises a lost connection here; the event has it
                pass
        else:
            time.sleep(min(left, 0.05))  # nothing connected to wake us: poll the condition
    return got
