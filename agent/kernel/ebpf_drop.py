"""DISCONNECT and LOSS with the tc classifier: plan the kernel changes, make them, undo them.

Each kernel change is handed to the recorder (the journal) with its undo before it is
made. Undo records are plain data, so a later process can revert them (`revert`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from faultline.agent.domain.clock import monotonic_ns
from faultline.agent.domain.deferred import Deferred
from faultline.agent.domain.errors import KernelError
from faultline.agent.domain.journal import Recorder
from faultline.agent.domain.spec import MECHANISM_KINDS, Counters, Direction, FaultKind, FaultSpec, Mechanism
from faultline.agent.kernel import nslock
from faultline.agent.kernel.ebpf import Rule, TcDropProgram
from faultline.agent.kernel.tc import FILTER_HANDLE, FILTER_PRIO, TcHooks

log = logging.getLogger(__name__)


@dataclass
class _Installed:
    slot: int
    ifindex: int
    directions: tuple[Direction, ...]
    rule_seq: int
    final: Counters | None = None  # set once the rule is cleared: a retried heal skips that step


@dataclass
class _Hook:
    seq: int
    users: set[str] = field(default_factory=set)


@dataclass
class _Clsact:
    seq: int | None  # in the hooks journal; None: it was there before faultline, never delete it


class EbpfDropper:
    mechanism = Mechanism.EBPF_TC
    kinds = MECHANISM_KINDS[Mechanism.EBPF_TC]

    def __init__(self, program: Deferred[TcDropProgram], hooks: TcHooks, recorder: Recorder, netns: str,
                 hook_recorder: Recorder) -> None:
        self._program = program  # compiled in the background at agent start: see ready()
        self._tc = hooks
        self._rec = recorder
        # Adding or removing a clsact qdisc makes the kernel deactivate the device for an RCU
        # grace period (qdisc_graft -> dev_deactivate): every flow on it can lose a packet. So
        # a clsact faultline makes stays until the agent stops (prepare() makes it at start on
        # the allowed interfaces); faults only add and remove filters, which do not.
        self._hook_rec = hook_recorder
        self._where = nslock.where(netns)  # journalled with each change: recovery undoes it there
        self._faults: dict[str, _Installed] = {}
        self._hooks: dict[tuple[int, Direction], _Hook] = {}
        self._clsact: dict[int, _Clsact] = {}

    # -- apply -----------------------------------------------------------
    def ready(self, wait_s: float) -> None:
        """Wait for the classifier's compile; the engine calls this before apply, outside its lock."""
        self._program.get(wait_s)

    @property
    def _prog(self) -> TcDropProgram:
        return self._program.get(0)  # ready() has waited for it

    def refuses(self, spec: FaultSpec) -> str:
        return spec.ebpf_cannot

    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None:
        """Everything in the kernel; with armed=False packets do not see it until arm()."""
        slot = self._prog.take_slot()
        try:
            self._apply(fault_id, spec, ifindex, slot, armed)
        except Exception:
            self._prog.give_back(slot)
            raise

    def _apply(self, fault_id: str, spec: FaultSpec, ifindex: int, slot: int, armed: bool) -> None:
        sel = spec.selector
        rule = Rule(
            ifindex=ifindex,
            directions=sel.direction.covers(),
            drop_probability=1.0 if spec.kind is FaultKind.DISCONNECT else spec.loss_percent / 100.0,
            peers=sel.peers,
            ports=sel.ports,
            protocol=sel.protocol,
        )
        attached: list[tuple[int, Direction]] = []
        try:
            for d in rule.directions:
                self._attach(fault_id, ifindex, sel.interface, d)
                attached.append((ifindex, d))
            seq = self._rec.record(
                fault_id,
                {"op": "set_rule", "slot": slot, "interface": sel.interface, "ifindex": ifindex},
                {"op": "clear_rule", "slot": slot},
            )
            try:
                # The lease's end from now, in the kernel from the first packet (lease() makes it exact).
                self._prog.set_rule(slot, rule, armed, monotonic_ns() + spec.lease_ms * 1_000_000)
            except Exception:
                self._prog.clear_rule(slot)
                self._rec.release(seq)
                raise
        except Exception:
            for ifx, d in reversed(attached):
                self._detach(fault_id, ifx, d)
            raise
        self._faults[fault_id] = _Installed(slot, ifindex, rule.directions, seq)

    def _attach(self, fault_id: str, ifindex: int, ifname: str, d: Direction) -> None:
        hook = self._hooks.get((ifindex, d))
        if hook is not None:
            hook.users.add(fault_id)
            return
        self.prepare(ifindex, ifname)
        seq = self._rec.record(
            fault_id,
            {"op": "add_filter", **self._where, "interface": ifname, "ifindex": ifindex,
             "direction": d.value, "prio": FILTER_PRIO, "handle": FILTER_HANDLE},
            {"op": "del_filter", **self._where, "interface": ifname, "ifindex": ifindex,
             "direction": d.value},
        )
        try:
            self._tc.add_bpf_filter(ifindex, d, self._prog.fd(d), self._prog.name(d))
        except KernelError:
            self._rec.release(seq)
            raise
        self._hooks[(ifindex, d)] = _Hook(seq, {fault_id})

    def prepare(self, ifindex: int, ifname: str) -> None:
        """Make sure the interface has a clsact, made (and journalled) by us if it had none."""
        if ifindex in self._clsact:
            return
        if self._tc.has_clsact(ifindex):
            self._clsact[ifindex] = _Clsact(seq=None)
            return
        seq = self._hook_rec.record(
            "agent",
            {"op": "add_clsact", **self._where, "interface": ifname, "ifindex": ifindex},
            {"op": "del_clsact", **self._where, "interface": ifname, "ifindex": ifindex},
        )
        try:
            self._tc.add_clsact(ifindex)
        except KernelError:
            self._hook_rec.release(seq)
            raise
        self._clsact[ifindex] = _Clsact(seq=seq)

    def close(self) -> None:
        """At agent stop, after every fault healed: remove the clsacts we made."""
        for ifindex, cls in list(self._clsact.items()):
            del self._clsact[ifindex]
            if cls.seq is None:
                continue
            if _foreign_filters(self._tc, ifindex):
                log.warning("ifindex %d: leaving clsact in place, filters we did not create are on it", ifindex)
            else:
                self._tc.del_clsact(ifindex)
            self._hook_rec.release(cls.seq)

    def arm(self, fault_id: str) -> None:
        self._prog.arm(self._faults[fault_id].slot)

    def lease(self, fault_id: str, deadline_ns: int) -> None:
        """The rule stops matching at deadline_ns (CLOCK_MONOTONIC) in the kernel itself."""
        self._prog.set_deadline(self._faults[fault_id].slot, deadline_ns)

    # -- heal ------------------------------------------------------------
    def counters(self, fault_id: str) -> Counters:
        inst = self._faults[fault_id]
        return inst.final if inst.final is not None else self._prog.counters(inst.slot)

    def heal(self, fault_id: str) -> Counters:
        """Idempotent step by step: if a detach fails, a retry picks up where this one stopped."""
        inst = self._faults[fault_id]
        if inst.final is None:
            self._prog.clear_rule(inst.slot)
            inst.final = self._prog.counters(inst.slot)
            self._prog.give_back(inst.slot)
            self._rec.release(inst.rule_seq)
        for d in reversed(inst.directions):
            self._detach(fault_id, inst.ifindex, d)
        del self._faults[fault_id]
        return inst.final

    def _detach(self, fault_id: str, ifindex: int, d: Direction) -> None:
        hook = self._hooks.get((ifindex, d))
        if hook is None:
            return
        hook.users.discard(fault_id)
        if hook.users:
            return
        self._tc.del_bpf_filter(ifindex, d)
        self._rec.release(hook.seq)
        del self._hooks[(ifindex, d)]


def _foreign_filters(tc: TcHooks, ifindex: int) -> bool:
    return any(
        not (f.prio == FILTER_PRIO and f.handle == FILTER_HANDLE)
        for d in (Direction.EGRESS, Direction.INGRESS)
        for f in tc.filters(ifindex, d)
    )


UNDO_OPS = ("clear_rule", "del_filter", "del_clsact")


def revert(tc: TcHooks, undo: dict[str, Any]) -> str:
    """Undo one journalled change left by an earlier run. Returns what was done.

    Checks that the interface is still the one the change was made on, and touches only
    faultline's own filter slot, so a reused ifindex or someone else's filter survives.
    """
    op = undo["op"]
    if op == "clear_rule":
        return "rule slot: gone with the program that held it"
    ifindex, ifname = int(undo["ifindex"]), undo["interface"]
    if tc.link_name(ifindex) != ifname:
        return f"{ifname}: interface gone or renamed, nothing to undo"
    if op == "del_filter":
        d = Direction(undo["direction"])
        ours = [f for f in tc.filters(ifindex, d) if f.prio == FILTER_PRIO and f.handle == FILTER_HANDLE]
        if not ours:
            return f"{ifname} {d.value}: filter already gone"
        if not ours[0].name.startswith("fl_"):
            return f"{ifname} {d.value}: filter at faultline's slot is not ours ({ours[0].name}); left"
        tc.del_bpf_filter(ifindex, d)
        return f"{ifname} {d.value}: removed faultline filter"
    if op == "del_clsact":
        if not tc.has_clsact(ifindex):
            return f"{ifname}: clsact already gone"
        if _foreign_filters(tc, ifindex):
            return f"{ifname}: clsact kept, it holds filters faultline did not create"
        tc.del_clsact(ifindex)
        return f"{ifname}: removed clsact"
    raise ValueError(f"unknown undo op {op!r}")
