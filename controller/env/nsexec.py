"""Run a command inside a named network namespace: python -m faultline.controller.env.nsexec NS -- CMD...

setns(2) through libc, not pyroute2: importing pyroute2 took 8.6 s of every process start
under TCG (the VM stage), enough to miss a scenario's 15 s readiness window.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNET = 0x40000000


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: python -m faultline.controller.env.nsexec NETNS -- COMMAND [ARG...]")
    name = sys.argv[1]
    if "/" in name or name in (".", ".."):
        sys.exit(f"nsexec: {name!r} is not a namespace name")
    try:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        sys.exit(f"nsexec: no network namespace {name!r}: {e.strerror}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        sys.exit(f"nsexec: setns {name!r}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
    try:
        os.execvp(sys.argv[3], sys.argv[3:])
    except OSError as e:
        sys.exit(f"nsexec: {sys.argv[3]}: {e.strerror}")


if __name__ == "__main__":
    main()
