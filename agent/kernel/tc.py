"""clsact hooks and cls_bpf filters through one pyroute2 netlink socket.

Only this module speaks tc netlink for the eBPF mechanism. It works in the network
namespace of the calling process (the agent enters its namespace at start).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.domain.errors import KernelError
from agent.domain.spec import Direction

CLSACT_HANDLE = 0xFFFF0000
PARENT = {Direction.INGRESS: 0xFFFFFFF2, Direction.EGRESS: 0xFFFFFFF3}
# faultline's own filter slot on each hook: recognisable in `tc filter show`, and the
# only prio/handle this agent ever deletes.
FILTER_PRIO = 49
FILTER_HANDLE = 0xFA17
ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class FilterInfo:
    kind: str
    prio: int
    handle: int
    name: str


class TcHooks:
    """Owns one netlink socket; close() it (or use `with`)."""

    def __init__(self) -> None:
        self._ipr = IPRoute()

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
        self._call("delete clsact", lambda: self._ipr.tc("del", "clsact", ifindex), ok=(errno.ENOENT, errno.EINVAL))

    # filters -----------------------------------------------------------
    def filters(self, ifindex: int, direction: Direction) -> list[FilterInfo]:
        out = []
        try:
            msgs = list(self._ipr.get_filters(index=ifindex, parent=PARENT[direction]))
        except NetlinkError as e:
            if e.code in (errno.EINVAL, errno.ENOENT):  # no clsact: no filters
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
            ok=(errno.ENOENT, errno.EINVAL),
        )

    def _call(self, what: str, fn: Callable[[], object], ok: tuple[int, ...] = ()) -> None:
        try:
            fn()
        except NetlinkError as e:
            if e.code in ok:
                return
            raise KernelError(what, e.code) from e
