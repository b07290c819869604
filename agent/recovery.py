"""Undo what an earlier run left: at every start of `serve`, and by `faultline-agent cleanup`.

Each journalled change is undone in the network namespace it was made in (its inode is
journalled with it), whatever `--netns` this start has: a filter made in one namespace is
never looked for on a same-named interface of another. A namespace that is gone took its
filters and qdiscs with it; those records are released saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faultline.agent.domain.journal import Entry, Journal
from faultline.agent.domain.statelock import StateLock
from faultline.agent.kernel import ebpf_drop, netem_shape, nslock, signals
from faultline.agent.kernel.tc import TcHooks

log = logging.getLogger(__name__)

# Each mechanism declares the undo operations it journals; recovery dispatches on them.
UNDOERS: dict[str, Callable[[TcHooks, dict], str]] = {
    **{op: lambda _tc, undo: signals.revert(undo) for op in signals.UNDO_OPS},
    **{op: netem_shape.revert for op in netem_shape.UNDO_OPS},
    **{op: ebpf_drop.revert for op in ebpf_drop.UNDO_OPS},
}

# Undos of kernel objects that live in a network namespace: gone with it, nothing to undo.
IN_NAMESPACE = frozenset(ebpf_drop.UNDO_OPS) | frozenset(netem_shape.UNDO_OPS)


@dataclass
class Recovery:
    """What a recovery undid, and what it could not (those stay journalled for the next try)."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __add__(self, other: Recovery) -> Recovery:
        return Recovery(self.done + other.done, self.failed + other.failed)


def revert(tc: TcHooks, undo: dict) -> str:
    undoer = UNDOERS.get(str(undo.get("op")))
    if undoer is None:
        raise ValueError(f"unknown undo op {undo.get('op')!r} (journalled by a newer agent?)")
    return undoer(tc, undo)


def recover(journal: Journal, tc: TcHooks | None, gone_netns: str = "",
            only: Callable[[Entry], bool] = lambda _: True) -> Recovery:
    """Undo, newest first, every change (of those `only` picks) an earlier run left in the kernel.
    Each undo runs on its own: one that fails is reported and kept in the journal, and the rest
    still run. gone_netns: the change's namespace no longer exists, nor what was in it."""
    out = Recovery()
    for entry in reversed(journal.pending()):
        if not only(entry):
            continue
        if gone_netns and entry.undo.get("op") in IN_NAMESPACE:
            journal.release(entry.seq)
            out.done.append(f"{entry.undo.get('op')} of {entry.fault_id}: namespace {gone_netns} gone: "
                            "nothing left there")
            continue
        try:
            what = revert(tc, entry.undo)  # type: ignore[arg-type]  # signals' undos need no tc
        except Exception as e:  # any failure of one undo must not stop the others
            out.failed.append(f"{entry.change.get('op', '?')} of {entry.fault_id} "
                              f"(undo {entry.undo.get('op', '?')}): {type(e).__name__}: {e}")
            log.error("could not undo %s: %s; kept in the journal for the next try", entry.change, e)
            continue
        journal.release(entry.seq)
        out.done.append(what)
    return out


def _place(entry: Entry) -> tuple[str, int | None]:
    """The namespace a change names: its --netns name and, if journalled, its inode. Undos that
    live in no namespace (signals) are done from here."""
    if entry.undo.get("op") not in IN_NAMESPACE:
        return "", -1
    ino = entry.undo.get("netns_ino")
    return str(entry.undo.get("netns", "")), int(ino) if isinstance(ino, int) else None


def recover_everywhere(journals: Sequence[Journal], here: TcHooks | None = None) -> Recovery:
    """recover() for every namespace the journals name, each with a netlink socket made in it.
    here: this namespace's socket, if the caller has one (else one is opened)."""
    out = Recovery()
    places = sorted({_place(e) for j in journals for e in j.pending()}, key=lambda p: (p[0], p[1] or 0))
    for name, ino in places:
        path = "" if ino == -1 else nslock.locate(name, ino)
        label = name or (f"net:[{ino}]" if ino else "the host's")
        if path is None:  # gone, and its filters and qdiscs with it
            for j in journals:
                out += recover(j, None, label, only=lambda e, p=(name, ino): _place(e) == p)
            continue
        tc = here if path == "" and here is not None else TcHooks(path)
        try:
            for j in journals:
                out += recover(j, tc, only=lambda e, p=(name, ino): _place(e) == p)
        finally:
            if tc is not here:
                tc.close()
    return out


def cleanup(state_dir: Path) -> tuple[Recovery, bool]:
    """Revert what a previous run left, without serving. Returns (what was done, journal empty).
    Refuses (FailedPrecondition) beside a live agent on the same state dir."""
    lock = StateLock(state_dir, "cleanup")
    try:
        journal, hooks = Journal(state_dir), Journal(state_dir, Journal.HOOKS)
        if not journal.pending() and not hooks.pending():
            return Recovery(done=["journal empty: nothing to undo"]), True
        # The fault records before the standing hooks: a filter goes before its clsact.
        report = recover_everywhere([journal]) + recover_everywhere([hooks])
        return report, journal.is_empty() and hooks.is_empty()
    finally:
        lock.release()
