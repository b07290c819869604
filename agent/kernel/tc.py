"""tc through one pyroute2 netlink socket: clsact hooks and cls_bpf filters (eBPF drops),
faultline's htb root with netem leaves (netem faults), and root qdisc snapshots.

Only this module speaks tc netlink. It works in the network namespace of the calling
process (the agent enters its namespace at start).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, nlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWQDISC, TC_H_ROOT
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from faultline.agent.domain.errors import KernelError
from faultline.agent.domain.spec import Direction, Netem
from faultline.agent.kernel import netem_nla

CLSACT_HANDLE = 0xFFFF0000
PARENT = {Direction.INGRESS: 0xFFFFFFF2, Direction.EGRESS: 0xFFFFFFF3}
# faultline's own filter slot on each hook: recognisable in `tc filter show`, and the
# only prio/handle this agent ever deletes.
FILTER_PRIO = 49
FILTER_HANDLE = 0xFA17
ETH_P_ALL = 0x0003
# faultline's root for netem faults: htb "fa17:", one class fa17:<band> per fault with a
# netem leaf "fa<band>:" (bands 1..32). htb has no default class, so anything the
# classifier does not pick leaves through htb's direct queue, unshaped.
SHAPE_ROOT = 0xFA170000
CLASS_RATE = 100 * 10**9 // 8  # bytes/s: the class itself must never be what limits
CLASS_BURST = 1_000_000  # bytes: with htb's computed burst (0 at this rate) it would throttle
DIRECT_QLEN = 1000
TCA_KIND, TCA_OPTIONS = 1, 2
HOOK_PARENTS = (0xFFFFFFF1, 0xFFFFFFF2, 0xFFFFFFF3)  # ingress/clsact and its two hooks


def netem_handle(band: int) -> int:
    return (0xFA00 + band) << 16


@dataclass(frozen=True)
class RootQdisc:
    """A root qdisc as the kernel reports it, options as raw bytes so it can be put back exactly."""

    kind: str
    handle: int
    options: bytes

    @property
    def is_default(self) -> bool:
        # Handle 0: the kernel's own default (noqueue, pfifo_fast, mq, fq_codel...); it comes
        # back by itself when the root above it is deleted.
        return self.handle == 0

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "handle": self.handle, "options": self.options.hex()}

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> RootQdisc:
        return cls(r["kind"], int(r["handle"]), bytes.fromhex(r["options"]))


class _RawQdisc(nlmsg):
    """A qdisc message whose options travel as the bytes they were dumped as.

    Not a tcmsg subclass: pyroute2 caches the compiled attribute table on the class, and a
    subclass would inherit tcmsg's (options decoded per kind) once tcmsg has been used.
    """

    prefix = "TCA_"
    fields = tcmsg.fields
    nla_map = (("TCA_UNSPEC", "none"), ("TCA_KIND", "asciiz"), ("TCA_OPTIONS", "cdata"))


def _raw_attrs(msg: Any) -> dict[int, bytes]:
    """Top-level attributes of a dumped tc message, undecoded (nlmsghdr 16 + tcmsg 20 bytes)."""
    buf = msg.data[msg.offset: msg.offset + msg.length]
    pos, out = 36, {}
    while pos + 4 <= len(buf):
        length, kind = struct.unpack_from("=HH", buf, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = bytes(buf[pos + 4: pos + length])
        pos += (length + 3) & ~3
    return out


@dataclass(frozen=True)
class FilterInfo:
    kind: str
    prio: int
    handle: int
    name: str


# A delete that finds nothing to delete succeeds: ENOENT/EINVAL (not there), ENODEV (the
# interface itself is gone, and the kernel dropped its qdiscs and filters with it).
GONE = (errno.ENOENT, errno.EINVAL, errno.ENODEV)


class TcHooks:
    """Owns one netlink socket; close() it (or use `with`)."""

    def __init__(self, netns: str = "") -> None:
        """netns: a namespace's path to work in (its socket made there); "": this one's."""
        netem_nla.register()
        self._ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> TcHooks:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # links -------------------------------------------------------------
    def link_index(self, name: str) -> int | None:
        found = self._ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def route_interface(self, address: str) -> str | None:
        """The interface the kernel would send to `address` through."""
        try:
            routes = self._ipr.route("get", dst=address)
        except NetlinkError:
            return None
        for r in routes:
            oif = r.get_attr("RTA_OIF")
            return self.link_name(oif) if oif else None
        return None

    def link_name(self, index: int) -> str | None:
        try:
            links = self._ipr.get_links(index)
        except NetlinkError:
            return None
        for link in links:
            return link.get("ifname")
        return None

    # qdiscs ------------------------------------------------------------
    def has_clsact(self, ifindex: int) -> bool:
        for q in self._ipr.get_qdiscs(ifindex):
            if q.get("index") == ifindex and q.get("kind") == "clsact":
                return True
        return False

    def add_clsact(self, ifindex: int) -> None:
        self._call("add clsact", lambda: self._ipr.tc("add", "clsact", ifindex))

    def del_clsact(self, ifindex: int) -> None:
        self._call("delete clsact", lambda: self._ipr.tc("del", "clsact", ifindex), ok=GONE)

    # root qdiscs (netem) ------------------------------------------------
    def root_qdisc(self, ifindex: int) -> RootQdisc | None:
        for q in self._ipr.get_qdiscs(ifindex):
            if q.get("index") == ifindex and q["parent"] == TC_H_ROOT:
                raw = _raw_attrs(q)
                kind = raw.get(TCA_KIND, b"").rstrip(b"\0").decode()
                return RootQdisc(kind, q["handle"], raw.get(TCA_OPTIONS, b""))
        return None

    def root_tree_size(self, ifindex: int, root_handle: int) -> int:
        """Qdiscs (non-default) and filters hanging below the root: what a snapshot could not restore."""
        n = 0
        for q in self._ipr.get_qdiscs(ifindex):
            if q.get("index") == ifindex and q["parent"] not in (TC_H_ROOT, *HOOK_PARENTS) and q["handle"]:
                n += 1
        try:
            n += sum(1 for f in self._ipr.get_filters(index=ifindex, parent=root_handle) if f["handle"])
        except NetlinkError:
            pass
        return n

    def restore_root(self, ifindex: int, snap: RootQdisc) -> None:
        """Put a snapshotted root back in place of whatever root is there now."""
        if snap.is_default:
            self.del_root(ifindex)
            return
        msg = _RawQdisc()
        msg["index"], msg["handle"], msg["parent"] = ifindex, snap.handle, TC_H_ROOT
        msg["attrs"] = [("TCA_KIND", snap.kind)] + ([("TCA_OPTIONS", snap.options)] if snap.options else [])
        msg["header"]["type"] = RTM_NEWQDISC
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        self._call("restore root qdisc", lambda: self._ipr.nlm_request_batch([msg]), ok=(errno.ENODEV,))

    def del_root(self, ifindex: int) -> None:
        self._call("delete root qdisc", lambda: self._ipr.tc("del", index=ifindex, parent=TC_H_ROOT),
                   ok=GONE)

    def add_shape_root(self, ifindex: int) -> None:
        """Replace the root with faultline's htb in one step (no moment without a qdisc)."""
        self._call("add htb root", lambda: self._ipr.tc(
            "replace", "htb", ifindex, SHAPE_ROOT, parent=TC_H_ROOT, default=0, direct_qlen=DIRECT_QLEN))

    def add_shape_filter(self, ifindex: int, fd: int, name: str) -> None:
        self._call("attach shaping classifier", lambda: self._ipr.tc(
            "add-filter", "bpf", ifindex, FILTER_HANDLE, parent=SHAPE_ROOT, prio=FILTER_PRIO,
            protocol=ETH_P_ALL, fd=fd, name=name, classid=SHAPE_ROOT, direct_action=True))

    def add_band(self, ifindex: int, band: int, netem: Netem, limit: int) -> None:
        classid = SHAPE_ROOT | band
        self._call("add htb class", lambda: self._ipr.tc(
            "add-class", "htb", ifindex, classid, parent=SHAPE_ROOT, rate=f"{CLASS_RATE * 8}bit",
            burst=CLASS_BURST, cburst=CLASS_BURST, quantum=200_000))
        try:
            self._call("add netem", lambda: self._ipr.tc(
                "add", "netem", ifindex, netem_handle(band), parent=classid, netem=netem, limit=limit))
        except KernelError:
            self.del_band(ifindex, band)
            raise

    def del_band(self, ifindex: int, band: int) -> None:
        """Delete a fault's class; its netem leaf (and what it still holds) goes with it."""
        self._call("delete htb class", lambda: self._ipr.tc(
            "del-class", index=ifindex, handle=SHAPE_ROOT | band, parent=SHAPE_ROOT), ok=GONE)

    def netem_state(self, ifindex: int, band: int) -> tuple[dict[str, int], int, int] | None:
        """(options as netem_nla.observed reads them, packets sent, packets dropped) of a band's netem."""
        for q in self._ipr.get_qdiscs(ifindex):
            if q.get("index") == ifindex and q["handle"] == netem_handle(band) and q.get_attr("TCA_KIND") == "netem":
                stats = q.get_attr("TCA_STATS") or {}
                return netem_nla.observed(q.get_attr("TCA_OPTIONS")), stats.get("packets", 0), stats.get("drop", 0)
        return None

    # filters -----------------------------------------------------------
    def filters(self, ifindex: int, direction: Direction) -> list[FilterInfo]:
        out = []
        try:
            msgs = list(self._ipr.get_filters(index=ifindex, parent=PARENT[direction]))
        except NetlinkError as e:
            if e.code in GONE:  # no clsact (or no interface any more): no filters
                return []
            raise KernelError("list filters", e.code) from e
        for m in msgs:
            if m.get("index") != ifindex or not m["handle"]:
                continue  # handle 0: the header the kernel reports for each prio, not a filter
            opts = m.get_attr("TCA_OPTIONS")
            name = opts.get_attr("TCA_BPF_NAME") if opts is not None else None
            out.append(FilterInfo(m.get_attr("TCA_KIND") or "", m["info"] >> 16, m["handle"], name or ""))
        return out

    def add_bpf_filter(self, ifindex: int, direction: Direction, fd: int, name: str) -> None:
        self._call(
            "attach bpf filter",
            lambda: self._ipr.tc(
                "add-filter", "bpf", ifindex, FILTER_HANDLE,
                parent=PARENT[direction], prio=FILTER_PRIO, protocol=ETH_P_ALL,
                fd=fd, name=name, classid=1, direct_action=True,
            ),
        )

    def del_bpf_filter(self, ifindex: int, direction: Direction) -> None:
        self._call(
            "detach bpf filter",
            lambda: self._ipr.tc(
                "del-filter", "bpf", ifindex, FILTER_HANDLE,
                parent=PARENT[direction], prio=FILTER_PRIO, protocol=ETH_P_ALL,
            ),
            ok=GONE,
        )

    def _call(self, what: str, fn: Callable[[], object], ok: tuple[int, ...] = ()) -> None:
        try:
            fn()
        except NetlinkError as e:
            if e.code in ok:
                return
            raise KernelError(what, e.code) from e
