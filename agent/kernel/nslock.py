"""One agent per network namespace: `serve` holds an exclusive flock on the namespace itself
(/proc/self/ns/net, one nsfs inode per namespace).

Two agents in one namespace would share its clsact: the first to stop deletes it under the
second's active fault. Locking the namespace's own inode needs no file anyone could plant or
remove, follows the namespace whatever its name, and the kernel drops it when its holder dies.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from faultline.agent.domain.errors import FailedPrecondition

NS_NET = "/proc/self/ns/net"


@dataclass(frozen=True)
class NetnsId:
    """A network namespace's identity: the nsfs inode (what `ip netns identify` compares)."""

    dev: int
    ino: int

    def __str__(self) -> str:
        return f"net:[{self.ino}]"


def current() -> NetnsId:
    st = os.stat(NS_NET)
    return NetnsId(st.st_dev, st.st_ino)


def of_path(path: str | Path) -> NetnsId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return NetnsId(st.st_dev, st.st_ino)


class NetnsLock:
    def __init__(self) -> None:
        self._fd = os.open(NS_NET, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(self._fd)
        self.netns = NetnsId(st.st_dev, st.st_ino)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = -1
            raise FailedPrecondition(f"this network namespace ({self.netns}) is served by another agent "
                                     f"({holder(self.netns)}); one agent per namespace: stop it first, or "
                                     "serve another --netns") from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def holder(ns: NetnsId) -> str:
    """Who holds the namespace's flock, from /proc/locks: its pid and the agent's command line."""
    want = f"{os.major(ns.dev):02x}:{os.minor(ns.dev):02x}:{ns.ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "pid unknown"
    for line in lines:
        words = line.split()
        if len(words) >= 6 and words[1] == "FLOCK" and words[5] == want and words[4].isdigit():
            return f"pid {words[4]}: {_cmdline(int(words[4]))}"
    return "pid unknown"


def _cmdline(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    return text[:300] or "?"


def where(name: str) -> dict[str, str | int]:
    """What a journalled change says of its namespace: the --netns name and the inode, which
    recovery matches whatever name (or none) a later start has."""
    return {"netns": name, "netns_ino": current().ino}


def locate(name: str, ino: int | None) -> str | None:
    """The path of the namespace a change was made in; "" for this one; None once it is gone.
    The inode decides when journalled; else the name ("" was the agent's own at start: the
    host's, as /proc/1/ns/net)."""
    here = current()
    candidates = [f"/run/netns/{name}"] if name else ["/proc/1/ns/net"]
    if ino is not None:
        if ino == here.ino:
            return ""
        run = Path("/run/netns")
        names = sorted(p.name for p in run.iterdir()) if run.is_dir() else []
        candidates = [f"/run/netns/{n}" for n in names] + ["/proc/1/ns/net"]
        return next((c for c in candidates if (i := of_path(c)) is not None and i.ino == ino), None)
    found = of_path(candidates[0])
    if found is None:
        return None
    return "" if found.ino == here.ino else candidates[0]
