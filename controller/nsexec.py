"""Run a command inside a named network namespace: python -m controller.nsexec NS -- CMD..."""

from __future__ import annotations

import os
import sys


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: python -m controller.nsexec NETNS -- COMMAND [ARG...]")
    from pyroute2 import netns

    netns.setns(sys.argv[1], flags=0)
    os.execvp(sys.argv[3], sys.argv[3:])


if __name__ == "__main__":
    main()
