"""Wires the agent together: journal recovery, the BPF program, mechanisms, the engine."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from agent.domain.engine import FaultEngine
from agent.domain.errors import FailedPrecondition, KernelError
from agent.domain.journal import Journal
from agent.domain.policy import Policy
from agent.domain.spec import Counters, Direction, Fault, Mechanism
from agent.domain.validation import Limits
from agent.domain.watch import WatchHub
from agent.kernel import capabilities, ebpf_drop, netem_shape, signals
from agent.kernel.ebpf import TcDropProgram
from agent.kernel.ebpf_drop import EbpfDropper
from agent.kernel.netem_shape import NetemShaper
from agent.kernel.signals import ProcessSignaller
from agent.kernel.sock_destroy import SockDiag, SocketResetter
from agent.kernel.tc import TcHooks
from agent.kernel.tcp_watch import TcpWatchProgram

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    listen: str = "0.0.0.0:7070"
    state_dir: Path = Path("/var/lib/faultline")
    netns: str = ""  # namespace the agent entered at start ("" = its own)
    excluded_ports: tuple[int, ...] = (22,)
    max_lease_ms: int = 3_600_000
    allowed_interfaces: frozenset[str] | None = None

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def all_excluded_ports(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys((self.listen_port, *self.excluded_ports)))


def revert(tc: TcHooks, undo: dict) -> str:
    if undo["op"] in signals.UNDO_OPS:
        return signals.revert(undo)
    if undo["op"] in netem_shape.UNDO_OPS:
        return netem_shape.revert(tc, undo)
    return ebpf_drop.revert(tc, undo)


def recover(journal: Journal, tc: TcHooks) -> list[str]:
    """Undo, newest first, every change an earlier run left in the kernel."""
    report = []
    for entry in reversed(journal.pending()):
        try:
            what = revert(tc, entry.undo)
        except KernelError as e:
            report.append(f"FAILED to undo {entry.change} ({e}); kept in the journal")
            continue
        journal.release(entry.seq)
        report.append(what)
    return report


class AgentRuntime:
    def __init__(self, config: AgentConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.policy = policy or Policy()
        self.kernel_release = platform.release()
        self.journal = Journal(config.state_dir)
        self.hooks_journal = Journal(config.state_dir, Journal.HOOKS)
        self.tc = TcHooks()
        for line in recover(self.journal, self.tc) + recover(self.hooks_journal, self.tc):
            log.warning("recovered from an earlier run: %s", line)
        unavailable: dict[Mechanism, str] = {}
        mechanisms = []
        self.dropper: EbpfDropper | None = None
        self.program: TcDropProgram | None = None
        program_error = None
        try:
            self.program = TcDropProgram(config.all_excluded_ports())
        except FailedPrecondition as e:
            program_error = str(e)
            unavailable[Mechanism.EBPF_TC] = program_error
        fd = self.program.fd(Direction.EGRESS) if self.program else None
        self.features = capabilities.probe(fd, program_error)
        have = {f.name: f for f in self.features}
        if self.program is not None:
            if not (have["clsact"].available and have["cls_bpf"].available):
                why = have["clsact"].reason if not have["clsact"].available else have["cls_bpf"].reason
                unavailable[Mechanism.EBPF_TC] = f"clsact/cls_bpf missing: {why}"
            else:
                self.dropper = EbpfDropper(self.program, self.tc, self.journal, config.netns, self.hooks_journal)
                for name in sorted((config.allowed_interfaces or set()) | (self.policy.interfaces or set())):
                    index = self.tc.link_index(name)
                    if index is not None:
                        self.dropper.prepare(index, name)
                mechanisms.append(self.dropper)
        if not have["netem"].available:
            unavailable[Mechanism.NETEM] = f"kernel: {have['netem'].reason}"
        elif not have["htb"].available:
            unavailable[Mechanism.NETEM] = f"netem faults are scoped by an htb root: {have['htb'].reason}"
        elif self.program is None or Mechanism.EBPF_TC in unavailable:
            unavailable[Mechanism.NETEM] = f"netem faults are scoped by the eBPF classifier: {program_error}"
        else:
            mechanisms.append(NetemShaper(self.program, self.tc, self.journal, config.netns))
        self.features.append(capabilities.Feature(
            "netem_ingress", False, "not offered: netem faults shape egress only (no IFB redirect yet)"))
        mechanisms.append(ProcessSignaller(self.journal, config.state_dir, config.netns))
        self.features.append(capabilities.Feature(
            "process_faults", self.policy.allow_process_faults,
            f"signals to this host's processes; {'allowed' if self.policy.allow_process_faults else 'off'} "
            f"by policy ({self.policy.source})"))
        self.diag: SockDiag | None = SockDiag()
        why = self.diag.destroy_supported()
        self.features.append(capabilities.Feature("sock_destroy", not why, why or "SOCK_DESTROY answered"))
        if why:
            unavailable[Mechanism.SOCK_DESTROY] = why
            self.diag.close()
            self.diag = None
        else:
            mechanisms.append(SocketResetter(self.diag, config.all_excluded_ports()))
        self.engine = FaultEngine(
            mechanisms, unavailable, self.tc.link_index, self.tc.route_interface,
            Limits(max_lease_ms=config.max_lease_ms), config.allowed_interfaces, policy=self.policy,
        )
        self.observer: TcpWatchProgram | None = None
        observer_error = ""
        try:
            self.observer = TcpWatchProgram()
        except FailedPrecondition as e:
            observer_error = str(e)
            log.warning("no TCP observation: %s", e)
        status = ({s.tracepoint: (s.available, s.reason) for s in self.observer.status.values()}
                  if self.observer else None)
        self.features += capabilities.observation_features(status, observer_error)
        self.hub = WatchHub(self.observer, observer_error, lambda: local_addresses(config.netns != ""),
                            self._fault_counters)

    def _fault_counters(self) -> list[tuple[str, Counters]]:
        return [(f.fault_id, f.counters) for f in self.engine.list(False)]

    def close(self) -> list[Fault]:
        """Heal every fault (as SHUTDOWN), then release the program and the socket."""
        self.hub.close()
        if self.observer is not None:
            self.observer.close()
        healed = self.engine.close()
        if self.dropper is not None:
            self.dropper.close()
        if self.program is not None:
            self.program.close()
        self.tc.close()
        if self.diag is not None:
            self.diag.close()
        return healed


def local_addresses(in_lab_namespace: bool) -> list[IPv4Address | IPv6Address]:
    """This host's addresses: the observer reports only connections bound to one of them.

    In a lab namespace loopback is left out: every namespace has its own 127.0.0.1, so an
    address that is everyone's cannot say whose a connection is.
    """
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        addrs = [ip_address(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr()]
    return [a for a in addrs if not (in_lab_namespace and a.is_loopback)]


def cleanup(state_dir: Path) -> tuple[list[str], bool]:
    """Revert what a previous run left, without serving. Returns (report, journal empty)."""
    journal, hooks = Journal(state_dir), Journal(state_dir, Journal.HOOKS)
    pending = journal.pending() + hooks.pending()
    if not pending:
        return ["journal empty: nothing to undo"], True
    netns = {e.change.get("netns", "") for e in pending} - {""}
    if len(netns) > 1:
        raise FailedPrecondition(f"journal spans several namespaces: {sorted(netns)}")
    if netns:
        from pyroute2 import netns as pnetns

        pnetns.setns(netns.pop(), flags=0)
    with TcHooks() as tc:
        report = recover(journal, tc) + recover(hooks, tc)
    return report, journal.is_empty() and hooks.is_empty()
