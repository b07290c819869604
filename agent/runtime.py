"""Wires the agent together: journal recovery, the BPF program, mechanisms, the engine."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from faultline.agent.domain import health
from faultline.agent.domain.audit import AuditLog
from faultline.agent.domain.deferred import BuildStatus, Deferred, compile_in_background
from faultline.agent.domain.engine import FaultEngine
from faultline.agent.domain.errors import Exhausted
from faultline.agent.domain.journal import Journal
from faultline.agent.domain.policy import Policy
from faultline.agent.domain.spec import Counters, Fault, Mechanism
from faultline.agent.domain.statelock import StateLock
from faultline.agent.domain.validation import Limits
from faultline.agent.domain.watch import WatchHub
from faultline.agent.kernel import capabilities
from faultline.agent.kernel.ebpf import TcDropProgram
from faultline.agent.kernel.ebpf_drop import EbpfDropper
from faultline.agent.kernel.netem_shape import NetemShaper
from faultline.agent.kernel.nslock import NetnsLock
from faultline.agent.kernel.signals import ProcessSignaller
from faultline.agent.kernel.sock_destroy import SockDiag, SocketResetter
from faultline.agent.kernel.tc import TcHooks
from faultline.agent.kernel.tcp_watch import TcpWatchProgram
from faultline.agent.recovery import recover_everywhere

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    listen: str = "0.0.0.0:7070"
    state_dir: Path = Path("/var/lib/faultline")
    netns: str = ""  # namespace the agent entered at start ("" = its own)
    excluded_ports: tuple[int, ...] = (22,)
    max_lease_ms: int = 3_600_000
    allowed_interfaces: frozenset[str] | None = None
    audit_log: Path | None = None  # default STATE_DIR/audit.jsonl
    audit_max_bytes: int = 16 << 20
    audit_keep: int = 5

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def all_excluded_ports(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys((self.listen_port, *self.excluded_ports)))


class AgentRuntime:
    """Serves as soon as the kernel is probed; the BPF programs compile behind (start_compiling)."""

    def __init__(self, config: AgentConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.policy = policy or Policy()
        self.kernel_release = platform.release()
        self.timings: list[tuple[str, float]] = []  # each start step and its seconds, for the log
        with self._step("journal recovery"):
            self.lock = StateLock(config.state_dir, "serve")
            self.nslock = NetnsLock()  # after the state lock: a second agent on one dir is told that first
            self.audit = AuditLog(config.audit_log or config.state_dir / "audit.jsonl", config.audit_max_bytes,
                                  config.audit_keep)
            self.journal = Journal(config.state_dir)
            self.hooks_journal = Journal(config.state_dir, Journal.HOOKS)
            self.tc = TcHooks()
            self.recovery = recover_everywhere([self.journal], self.tc) + recover_everywhere([self.hooks_journal],
                                                                                            self.tc)
            for line in self.recovery.done:
                log.warning("recovered from an earlier run: %s", line)
                self.audit.write("agent", "Recovery", "OK", sync=True, change=line)
            for line in self.recovery.failed:
                self.audit.write("agent", "Recovery", "FAILED", sync=True, change=line,
                                 undo="kept in the journal: the next start or `faultline-agent cleanup` tries again")
        unavailable: dict[Mechanism, str] = {}
        mechanisms: list = []
        self.dropper: EbpfDropper | None = None
        ports = config.all_excluded_ports()
        self.program: Deferred[TcDropProgram] = Deferred("tc_drop.c", lambda: TcDropProgram(ports),
                                                         TcDropProgram.close)
        self.observer: Deferred[TcpWatchProgram] = Deferred("tcp_watch.c", TcpWatchProgram, TcpWatchProgram.close)
        with self._step("kernel probe"):
            self.kernel_features = capabilities.probe()
            self.tracefs_problem = capabilities.tracefs_problem()
        have = {f.name: f for f in self.kernel_features}
        if not (have["clsact"].available and have["cls_bpf"].available):
            why = have["clsact"].reason if not have["clsact"].available else have["cls_bpf"].reason
            unavailable[Mechanism.EBPF_TC] = f"clsact/cls_bpf missing: {why}"
        else:
            self.dropper = EbpfDropper(self.program, self.tc, self.journal, config.netns, self.hooks_journal)
            with self._step("clsact on allowed interfaces"):
                for name in sorted((config.allowed_interfaces or set()) | (self.policy.interfaces or set())):
                    index = self.tc.link_index(name)
                    if index is None:
                        continue
                    try:
                        self.dropper.prepare(index, name)
                    except Exhausted as e:  # a full state dir: made later, by the first fault that needs it
                        log.warning("clsact on %s not made at start: %s", name, e)
            mechanisms.append(self.dropper)
        if not have["netem"].available:
            unavailable[Mechanism.NETEM] = f"kernel: {have['netem'].reason}"
        elif not have["htb"].available:
            unavailable[Mechanism.NETEM] = f"netem faults are scoped by an htb root: {have['htb'].reason}"
        elif Mechanism.EBPF_TC in unavailable:
            unavailable[Mechanism.NETEM] = f"netem faults are scoped by the eBPF classifier: " \
                                           f"{unavailable[Mechanism.EBPF_TC]}"
        else:
            mechanisms.append(NetemShaper(self.program, self.tc, self.journal, config.netns))
        self.kernel_features.append(capabilities.Feature(
            "netem_ingress", False, "not offered: netem faults shape egress only (no IFB redirect yet)"))
        self.signaller = ProcessSignaller(self.journal, config.state_dir, config.netns,
                                          self.policy.restart_commands, self.policy.max_processes)
        mechanisms.append(self.signaller)
        with self._step("sock_diag"):
            self.diag: SockDiag | None = SockDiag()
            why = self.diag.destroy_supported()
        self.kernel_features.append(capabilities.Feature("sock_destroy", not why, why or "SOCK_DESTROY answered"))
        if why:
            unavailable[Mechanism.SOCK_DESTROY] = why
            self.diag.close()
            self.diag = None
        else:
            mechanisms.append(SocketResetter(self.diag, config.all_excluded_ports()))
        self.engine = FaultEngine(
            mechanisms, unavailable, self.tc.link_index, self.tc.route_interface,
            Limits(max_lease_ms=config.max_lease_ms), config.allowed_interfaces, policy=self.policy,
            audit=lambda method, verdict, **fields: self.audit.write("agent", method, verdict, **fields),
        )
        self.hub = WatchHub(self.observer, "", lambda: local_addresses(config.netns != ""), self._fault_counters)

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Time one start step; its start is logged so that a start stuck in it says where."""
        log.debug("start: %s ...", name)
        t0 = time.monotonic()
        yield
        self.timings.append((name, time.monotonic() - t0))

    def start_compiling(self) -> None:
        """Compile the programs behind a serving agent: the classifier first (faults), then the
        observer (watches). One that fails withdraws what needs it, with the reason."""
        if self.dropper is None:
            self.program.skip(f"not compiled: {self.engine.unavailable()[Mechanism.EBPF_TC]}")
        self._compiler = compile_in_background([self.program, self.observer], on_built=self._built)

    def compile_finished(self, timeout_s: float) -> bool:
        """Wait (bounded) for the compile thread, stopping: a build it is inside ends and is closed,
        the rest are skipped. False if it still runs (bcc's exit hooks would race it)."""
        compiler = getattr(self, "_compiler", None)
        if compiler is not None:
            compiler.join(timeout_s)
        return compiler is None or not compiler.is_alive()

    def _built(self, build: Deferred) -> None:
        if build is self.program and self.dropper is not None and (why := build.failed()):
            for m in (Mechanism.EBPF_TC, Mechanism.NETEM):
                self.engine.withdraw(m, f"the tc classifier did not compile: {why}")

    def program_status(self) -> list[BuildStatus]:
        return [self.program.status(), self.observer.status()]

    def reload_policy(self, policy: Policy) -> None:
        """A new policy (SIGHUP): applies to requests from now on; faults already made stay."""
        self.policy = policy
        self.engine.policy = policy
        self.signaller.set_policy(policy.restart_commands, policy.max_processes)

    def _process_feature(self) -> capabilities.Feature:
        p = self.policy
        restarts = ", ".join(sorted(p.restart_commands)) or "none"
        return capabilities.Feature(
            "process_faults", p.allow_process_faults,
            f"signals to this host's processes; {'allowed' if p.allow_process_faults else 'off'} by policy "
            f"({p.source}); restart commands: {restarts}; units: {', '.join(sorted(p.units)) or 'none'}; "
            f"at most {p.max_processes} processes per fault")

    @property
    def features(self) -> list[capabilities.Feature]:
        """The kernel's features, then where each BPF program stands now."""
        prog = self.program.status()
        feats = [*self.kernel_features, self._process_feature(), capabilities.Feature(
            "ebpf_tc_program", prog.state == "ready",
            {"ready": f"tc_drop.c compiled and verified ({prog.seconds:.1f} s, in the background)",
             "failed": prog.error}.get(prog.state, f"tc_drop.c {prog.state} in the background "
                                                   f"({prog.seconds:.0f} s so far)"))]
        obs = self.observer.status()
        observer = self.observer.ready()
        if observer is not None:
            status = {s.tracepoint: (s.available, s.reason) for s in observer.status.values()}
            return feats + capabilities.observation_features(status, "")
        why = obs.error or f"tcp_watch.c {obs.state} in the background ({obs.seconds:.0f} s so far)"
        return feats + capabilities.observation_features(None, why)

    def _fault_counters(self) -> list[tuple[str, Counters]]:
        return [(f.fault_id, f.counters) for f in self.engine.list(False)]

    def close(self) -> list[Fault]:
        """Heal every fault (as SHUTDOWN), then release the program and the socket."""
        self.hub.close()
        self.observer.close()
        healed = self.engine.close()
        if self.dropper is not None:
            self.dropper.close()
        self.program.close()
        self.tc.close()
        if self.diag is not None:
            self.diag.close()
        self.audit.flush()
        self.nslock.release()
        self.lock.release()
        return healed

    def observation_problems(self) -> list[str]:
        """Why TCP observation cannot do all it offers (empty while it compiles: its failure is the
        program's own reason then)."""
        if self.tracefs_problem:
            return [self.tracefs_problem]
        observer = self.observer.ready()
        if observer is None:
            return []
        return [f"tracepoint {s.tracepoint}: {s.reason}" for s in observer.status.values() if not s.available]

    def health(self, cert_not_after_ns: int = 0) -> health.Verdict:
        return health.judge(self.program_status(), self.observation_problems(), self.pending_undos(),
                            self.engine.heal_failed_ids(), self.audit_error(), cert_not_after_ns, time.time_ns())

    def audit_error(self) -> str:
        return self.audit.last_error

    def pending_undos(self) -> list[str]:
        """Undos an earlier run left that could not be done (still journalled)."""
        return list(self.recovery.failed)


def local_addresses(in_lab_namespace: bool) -> list[IPv4Address | IPv6Address]:
    """This host's addresses: the observer reports only connections bound to one of them.

    In a lab namespace loopback is left out: every namespace has its own 127.0.0.1, so an
    address that is everyone's cannot say whose a connection is.
    """
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        addrs = [ip_address(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr()]
    return [a for a in addrs if not (in_lab_namespace and a.is_loopback)]
