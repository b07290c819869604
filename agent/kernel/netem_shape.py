"""Netem faults scoped to peers/ports: faultline's htb root, one netem class per fault.

On an interface's first netem fault the root qdisc is snapshotted and replaced by an htb
root ("fa17:") whose classifier is the eBPF program's fl_shape: a packet matching a
fault's rule goes to that fault's class (its leaf is netem); anything else leaves
through htb's direct queue, untouched. The last heal puts the snapshot back, byte for
byte. Each change is journalled with its undo before it is made, as in ebpf_drop.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from faultline.agent.domain.clock import monotonic_ns
from faultline.agent.domain.deferred import Deferred
from faultline.agent.domain.errors import FailedPrecondition, KernelError
from faultline.agent.domain.journal import Recorder
from faultline.agent.domain.spec import MECHANISM_KINDS, Counters, Direction, FaultSpec, Mechanism, Netem
from faultline.agent.kernel import netem_nla, nslock
from faultline.agent.kernel.ebpf import SHAPE_FUNC, Rule, TcDropProgram
from faultline.agent.kernel.tc import SHAPE_ROOT, RootQdisc, TcHooks

log = logging.getLogger(__name__)

# Sizing netem's queue: it must hold everything sent during the longest delay. Without a
# fault rate, assume full-size packets (the lab turns TSO/GSO off) at this link rate.
ASSUMED_LINK_BPS = 10 * 10**9
FULL_PACKET_BYTES = 1500
MIN_LIMIT, MAX_LIMIT = 1000, 10_000_000
INGRESS_REFUSAL = (
    "netem shapes egress only on this agent (ingress would need an IFB redirect, not offered yet): "
    "use direction EGRESS here, or apply the fault on the peer's agent"
)


def queue_limit(n: Netem) -> int:
    """Packets netem must be able to hold so its own limit (default 1000) never drops.

    Everything arriving during the longest delay is in the queue at once: arrival rate x
    (delay + tail of the jitter). With a rate, packets also wait their turn, but arrivals
    beyond the rate are what a real bottleneck drops, so the rate bounds the arrivals.
    """
    bps = n.rate_bps or ASSUMED_LINK_BPS
    pps = bps / (8 * FULL_PACKET_BYTES)
    hold_s = (n.delay_ns + 4 * n.jitter_ns) / 1e9
    return max(MIN_LIMIT, min(MAX_LIMIT, math.ceil(pps * hold_s * 1.5)))


@dataclass
class _Tree:
    seq: int                 # journal record: its undo puts `snapshot` back
    snapshot: RootQdisc
    bands: set[int] = field(default_factory=set)


@dataclass
class _Installed:
    slot: int
    band: int
    ifindex: int
    band_seq: int
    rule_seq: int
    final: Counters | None = None  # set once the rule is cleared: a retried heal skips that step


class NetemShaper:
    mechanism = Mechanism.NETEM
    kinds = MECHANISM_KINDS[Mechanism.NETEM]

    def __init__(self, program: Deferred[TcDropProgram], hooks: TcHooks, recorder: Recorder,
                 netns: str) -> None:
        self._program = program  # compiled in the background at agent start: see ready()
        self._tc = hooks
        self._rec = recorder
        self._where = nslock.where(netns)  # journalled with each change: recovery undoes it there
        self._trees: dict[int, _Tree] = {}
        self._faults: dict[str, _Installed] = {}

    def ready(self, wait_s: float) -> None:
        """Wait for the classifier's compile; the engine calls this before apply, outside its lock."""
        self._program.get(wait_s)

    @property
    def _prog(self) -> TcDropProgram:
        return self._program.get(0)  # ready() has waited for it

    def refuses(self, spec: FaultSpec) -> str:
        if spec.netem is None:
            return f"netem does not do {spec.kind.name}"
        if spec.selector.direction is not Direction.EGRESS:
            return INGRESS_REFUSAL
        return ""

    # -- apply -----------------------------------------------------------
    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None:
        """Everything in the kernel; with armed=False packets are not steered to it until arm()."""
        assert spec.netem is not None
        ifname = spec.selector.interface
        slot = self._prog.take_slot()
        band = slot + 1
        made: list[str] = []
        try:
            tree = self._tree(fault_id, ifindex, ifname)
            made.append("tree")
            limit = spec.netem.limit or queue_limit(spec.netem)
            band_seq = self._rec.record(
                fault_id,
                {"op": "add_netem", **self._where, "interface": ifname, "ifindex": ifindex, "band": band,
                 "limit": limit},
                {"op": "del_band", **self._where, "interface": ifname, "ifindex": ifindex, "band": band},
            )
            try:
                self._tc.add_band(ifindex, band, spec.netem, limit)
            except KernelError:
                self._rec.release(band_seq)
                raise
            tree.bands.add(band)
            made.append("band")
            self._verify(ifindex, band, spec.netem, limit)
            rule_seq = self._rec.record(
                fault_id,
                {"op": "set_rule", "slot": slot, "interface": ifname, "ifindex": ifindex, "band": band},
                {"op": "clear_rule", "slot": slot},
            )
            sel = spec.selector
            try:
                self._prog.set_rule(slot, Rule(ifindex=ifindex, directions=(Direction.EGRESS,), drop_probability=0.0,
                                               peers=sel.peers, ports=sel.ports, protocol=sel.protocol, band=band),
                                    armed, monotonic_ns() + spec.lease_ms * 1_000_000)
            except Exception:
                self._prog.clear_rule(slot)
                self._rec.release(rule_seq)
                raise
        except Exception:
            if "band" in made:
                self._drop_band(ifindex, band, band_seq)
            if "tree" in made:
                self._maybe_drop_tree(ifindex)
            self._prog.give_back(slot)
            raise
        self._faults[fault_id] = _Installed(slot, band, ifindex, band_seq, rule_seq)

    def arm(self, fault_id: str) -> None:
        self._prog.arm(self._faults[fault_id].slot)

    def lease(self, fault_id: str, deadline_ns: int) -> None:
        """Past deadline_ns the kernel no longer steers packets into the band: unshaped."""
        self._prog.set_deadline(self._faults[fault_id].slot, deadline_ns)

    def _tree(self, fault_id: str, ifindex: int, ifname: str) -> _Tree:
        tree = self._trees.get(ifindex)
        if tree is not None:
            return tree
        snap = self._tc.root_qdisc(ifindex)
        if snap is None:
            raise KernelError(f"read root qdisc of {ifname}", 0)
        if snap.kind == "htb" and snap.handle == SHAPE_ROOT:
            raise FailedPrecondition(
                f"{ifname} already has faultline's htb root fa17: that this agent did not make "
                "(another agent in this namespace, or a crash whose journal is gone): run faultline-agent cleanup")
        if not snap.is_default and self._tc.root_tree_size(ifindex, snap.handle):
            raise FailedPrecondition(
                f"{ifname} has a {snap.kind} root qdisc with classes or filters that faultline did not create; "
                "faultline could not restore that tree exactly, so it leaves it alone")
        seq = self._rec.record(
            fault_id,
            {"op": "replace_root", **self._where, "interface": ifname, "ifindex": ifindex},
            {"op": "restore_root", **self._where, "interface": ifname, "ifindex": ifindex,
             "snapshot": snap.to_record()},
        )
        try:
            self._tc.add_shape_root(ifindex)
        except KernelError:
            self._rec.release(seq)
            raise
        try:
            self._tc.add_shape_filter(ifindex, self._prog.shape_fd(), SHAPE_FUNC)
        except KernelError:
            self._tc.restore_root(ifindex, snap)
            self._rec.release(seq)
            raise
        tree = _Tree(seq, snap)
        self._trees[ifindex] = tree
        return tree

    def _verify(self, ifindex: int, band: int, netem: Netem, limit: int) -> None:
        """Dump the qdisc back and compare with what was asked: the kernel may clamp or ignore."""
        state = self._tc.netem_state(ifindex, band)
        if state is None:
            raise KernelError(f"netem for band {band} missing right after it was added", 0)
        want, got = netem_nla.expected(netem, limit), state[0]
        wrong = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
        if wrong:
            detail = ", ".join(f"{k} asked {a} got {b}" for k, (a, b) in wrong.items())
            raise FailedPrecondition(f"the kernel's netem did not take the fault as asked: {detail}")

    # -- counters and heal ------------------------------------------------
    def counters(self, fault_id: str) -> Counters:
        inst = self._faults[fault_id]
        if inst.final is not None:
            return inst.final
        matched = self._prog.counters(inst.slot).matched
        state = self._tc.netem_state(inst.ifindex, inst.band)
        sent, dropped = (state[1], state[2]) if state else (0, 0)
        return Counters(matched=matched, dropped=dropped, shaped=sent)

    def heal(self, fault_id: str) -> Counters:
        """Idempotent step by step: if a kernel call fails, a retry picks up where this one stopped."""
        inst = self._faults[fault_id]
        if inst.final is None:
            self._prog.clear_rule(inst.slot)
            inst.final = self.counters(fault_id)
            self._rec.release(inst.rule_seq)
            self._prog.give_back(inst.slot)
        self._drop_band(inst.ifindex, inst.band, inst.band_seq)
        self._maybe_drop_tree(inst.ifindex)
        del self._faults[fault_id]
        return inst.final

    def _drop_band(self, ifindex: int, band: int, seq: int) -> None:
        self._tc.del_band(ifindex, band)
        self._rec.release(seq)
        tree = self._trees.get(ifindex)
        if tree is not None:
            tree.bands.discard(band)

    def _maybe_drop_tree(self, ifindex: int) -> None:
        tree = self._trees.get(ifindex)
        if tree is None or tree.bands:
            return
        self._tc.restore_root(ifindex, tree.snapshot)
        del self._trees[ifindex]  # only once restored: a failed restore is retried
        _check_restored(self._tc, ifindex, tree.snapshot)
        self._rec.release(tree.seq)


def _check_restored(tc: TcHooks, ifindex: int, snap: RootQdisc) -> bool:
    now = tc.root_qdisc(ifindex)
    same = now is not None and (now.handle == 0 if snap.is_default else now == snap)
    if not same:
        log.error("ifindex %d: root qdisc after restore is %s, snapshot was %s", ifindex, now, snap)
    return same


UNDO_OPS = ("del_band", "restore_root")


def revert(tc: TcHooks, undo: dict[str, Any]) -> str:
    """Undo one journalled netem change left by an earlier run (see ebpf_drop.revert)."""
    ifindex, ifname = int(undo["ifindex"]), undo["interface"]
    if tc.link_name(ifindex) != ifname:
        return f"{ifname}: interface gone or renamed, nothing to undo"
    root = tc.root_qdisc(ifindex)
    ours = root is not None and root.kind == "htb" and root.handle == SHAPE_ROOT
    if undo["op"] == "del_band":
        if not ours:
            return f"{ifname}: faultline's htb root already gone"
        tc.del_band(ifindex, int(undo["band"]))
        return f"{ifname}: removed netem band {undo['band']}"
    if undo["op"] == "restore_root":
        snap = RootQdisc.from_record(undo["snapshot"])
        if not ours:
            return f"{ifname}: root is not faultline's htb any more ({root.kind if root else 'none'}); left as is"
        tc.restore_root(ifindex, snap)
        exact = _check_restored(tc, ifindex, snap)
        what = "default root" if snap.is_default else f"{snap.kind} {snap.handle >> 16:x}:"
        return f"{ifname}: put back {what}" + ("" if exact else " (NOT identical to the snapshot: see log)")
    raise ValueError(f"unknown undo op {undo['op']!r}")
