"""Fakes of the kernel side (a mechanism, the probe program) for testing without root."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path
from types import SimpleNamespace

from faultline.agent.domain.engine import FaultEngine
from faultline.agent.domain.events import EventKind, TcpEvent, WatchFilter
from faultline.agent.domain.policy import Policy
from faultline.agent.domain.spec import Counters, FaultKind, FaultSpec, Mechanism
from faultline.agent.domain.watch import WatchHub
from faultline.agent.kernel.capabilities import Feature


class FakeMechanism:
    mechanism = Mechanism.EBPF_TC
    kinds = (FaultKind.DISCONNECT, FaultKind.LOSS)

    def __init__(self) -> None:
        self.installed: dict[str, tuple[FaultSpec, int]] = {}
        self.log: list[tuple[str, str]] = []
        self.deadlines: dict[str, int] = {}  # what the kernel would keep: each rule's lease end

    def ready(self, wait_s: float) -> None:
        """Nothing to compile: always ready."""

    def refuses(self, spec: FaultSpec) -> str:
        return spec.ebpf_cannot

    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None:
        self.installed[fault_id] = (spec, ifindex)
        self.log.append(("apply" if armed else "prepare", fault_id))

    def arm(self, fault_id: str) -> None:
        self.log.append(("arm", fault_id))

    def lease(self, fault_id: str, deadline_ns: int) -> None:
        self.deadlines[fault_id] = deadline_ns

    def heal(self, fault_id: str) -> Counters:
        del self.installed[fault_id]
        self.log.append(("heal", fault_id))
        return Counters(10, 3)

    def counters(self, fault_id: str) -> Counters:
        return Counters(5, 1)


LINKS = {"lab0": 2, "eth1": 3, "lo": 1}


@contextmanager
def fake_agent(probe: FakeProbe | None = None, host: str = "127.0.0.1", tls_dir: Path | None = None,
               policy: Policy | None = None, audit: Path | None = None,
               pending_undos: Iterable[str] = ()) -> Iterator[tuple[str, FaultEngine]]:
    """A real gRPC agent server on an ephemeral port, its engine on FakeMechanism (no kernel);
    with tls_dir, mTLS and the Gate (allowlist from the policy, audit to `audit`) as `serve` has them."""
    import grpc

    from faultline.agent.domain import health
    from faultline.agent.domain.audit import AuditLog
    from faultline.agent.domain.deferred import BuildStatus
    from faultline.agent.rpc.gate import Gate
    from faultline.agent.rpc.servicer import AgentServicer
    from faultline.agent.runtime import AgentConfig
    from faultline.v1 import agent_pb2_grpc as pb_grpc

    policy = policy or Policy()
    engine = FaultEngine([FakeMechanism()], {Mechanism.NETEM: "this kernel has no netem"}, LINKS.get,
                         route_interface=lambda addr: "lab0", policy=policy)
    hub = WatchHub(probe or FakeProbe(), "", lambda: [ip_address("10.77.0.1")],
                   lambda: [(f.fault_id, f.counters) for f in engine.list()])
    runtime = SimpleNamespace(
        engine=engine, kernel_release="test", config=AgentConfig(listen="127.0.0.1:7070", state_dir=Path("/x")),
        features=[Feature("netem", False, "this kernel has no netem")], hub=hub,
        program_status=lambda: [BuildStatus("tc_drop.c", "ready", 0.5, ""),
                                BuildStatus("tcp_watch.c", "ready", 0.7, "")],
        pending_undos=lambda: list(pending_undos), audit_error=lambda: "",
    )
    runtime.health = lambda not_after_ns=0: health.judge(
        runtime.program_status(), [], runtime.pending_undos(), engine.heal_failed_ids(),
        "", not_after_ns, time.time_ns())
    gate = [Gate(policy, AuditLog(audit), tls=tls_dir is not None)] if audit else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=gate)
    tls = None
    if tls_dir is not None:  # cryptography only then: pytester's module snapshots cannot load it twice
        from faultline.agent.rpc.tls import ServerTls

        tls = ServerTls(tls_dir)
    engine.server_tls = tls  # type: ignore[attr-defined]  # a test rotates the certificate through it
    pb_grpc.add_AgentServicer_to_server(AgentServicer(runtime, tls), server)
    if tls is not None:
        port = server.add_secure_port(f"{host}:0", tls.credentials())
    else:
        port = server.add_insecure_port(f"{host}:0")
    server.start()
    try:
        yield f"{host}:{port}", engine
    finally:
        server.stop(0)
        hub.close()
        engine.close()


class FakeProbe:
    """Stands in for TcpWatchProgram: tests push (mask-less) events; the fake applies each
    slot's filter the way the kernel program does and hands them to the hub's poll."""

    transport = "fake buffer"
    slots = 4

    def __init__(self, kinds: Iterable[EventKind] = EventKind) -> None:
        self._kinds = frozenset(kinds)
        self._attached: frozenset[EventKind] = frozenset()
        self.filters: dict[int, WatchFilter] = {}
        self.pending: list[TcpEvent] = []
        self.lost = 0
        self.matched = 0
        self.rtt_interval_ns = -1
        self.local: list[object] = []
        self._lock = threading.Lock()
        self.polled = threading.Event()

    def available(self) -> frozenset[EventKind]:
        return self._kinds

    def attach(self, kinds: Iterable[EventKind]) -> None:
        self._attached = frozenset(kinds) & self._kinds

    def attached(self) -> frozenset[EventKind]:
        return self._attached

    def set_watcher(self, slot: int, f: WatchFilter) -> None:
        self.filters[slot] = f

    def clear_watcher(self, slot: int) -> None:
        self.filters.pop(slot, None)

    def set_rtt_interval(self, ns: int) -> None:
        self.rtt_interval_ns = ns

    def set_local_addrs(self, addrs: Iterable[object]) -> None:
        self.local = list(addrs)

    def push(self, *events: TcpEvent) -> None:
        with self._lock:
            self.pending.extend(events)

    def poll(self, timeout_ms: int, offset_ns: int, deliver: Callable[[int, TcpEvent], None]) -> None:
        with self._lock:
            events, self.pending = self.pending, []
        for ev in events:
            mask = sum(1 << s for s, f in list(self.filters.items())
                       if ev.kind in f.kinds and ev.kind in self._attached and f.matches(ev.flow))
            if mask:
                self.matched += 1
                deliver(mask, ev)
        self.polled.set()
        if not events:
            threading.Event().wait(min(timeout_ms, 20) / 1000)

    def totals(self) -> tuple[int, int]:
        return self.matched, self.lost
