"""Test helpers: sockets inside lab namespaces, tc state as JSON, commands in a namespace."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(ns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside namespace `ns`. setns() moves only the calling thread,
    so a short-lived thread makes it and the test uses it from anywhere."""
    out: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            out.append(socket.socket(family, kind))
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def tc_state(ns: str, dev: str) -> dict[str, object]:
    """Qdiscs and filters of `dev` in `ns`, as the tc tool reports them (independent of the agent)."""

    def tc(*args: str) -> object:
        r = subprocess.run(["ip", "netns", "exec", ns, "tc", "-j", *args], capture_output=True, text=True, check=True)
        return json.loads(r.stdout or "[]")

    return {
        "qdisc": tc("qdisc", "show", "dev", dev),
        "ingress": tc("filter", "show", "dev", dev, "ingress"),
        "egress": tc("filter", "show", "dev", dev, "egress"),
    }


def in_ns(ns: str, *argv: str) -> list[str]:
    return [sys.executable, "-m", "controller.nsexec", ns, "--", *argv]
