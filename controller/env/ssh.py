"""A scenario's processes and probes on real hosts, over OpenSSH with the user's own keys and
config (`hosts.NAME.ssh: [user@]address`; `faultline run --ssh-config FILE` adds `-F FILE`).

A process is started under a small guard on the remote side: its stdin is the ssh channel, and
when that reaches EOF (the controller stopped it, was interrupted, or died: its end of the
pipe closes with it) the guard sends the process SIGTERM and waits for it, so it writes its
final counters and nothing outlives the controller. Its stdout and stderr come back through ssh
into the run's log. Nothing the agent does is involved: ssh runs as the user who runs the
controller, with that user's rights on the host.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

SSH_CONFIG_ENV = "FAULTLINE_SSH_CONFIG"
# Batch: never a password prompt in a run; keepalives: a dead link ends the session (and the
# process, by the guard) within ~15 s instead of TCP's minutes.
OPTIONS = ("-T", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
# sh on the remote host: "$@" is the process. Its stdin is /dev/null; the channel's is watched.
# (fd 3: sh gives a background list /dev/null as its stdin, so the channel is handed over as 3.)
GUARD = ('exec 3<&0; "$@" </dev/null 3<&- & p=$!; '
         '{ cat <&3 >/dev/null 2>&1; kill -TERM $p 2>/dev/null; } >/dev/null 2>&1 & exec 3<&-; '
         "trap 'kill -TERM $p 2>/dev/null' TERM HUP INT; "
         # wait first: the shell may have reaped a quick process already (wait still has its status);
         # again while it lives: a trapped signal interrupts wait.
         'wait $p; rc=$?; while kill -0 $p 2>/dev/null; do wait $p; rc=$?; done; exit $rc')
# A TCP connect from the host (python3 is on every Debian host): exit 0 when it connects.
TCP_CHECK = ("import socket,sys\n"
             "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
             "except OSError as e:\n print(e.strerror or e); sys.exit(1)\n")


def _base(config: Path | str | None) -> list[str]:
    cfg = config or os.environ.get(SSH_CONFIG_ENV) or None
    return ["ssh", *OPTIONS, *(["-F", str(cfg)] if cfg else [])]


def command(target: str, argv: Sequence[str], config: Path | str | None = None) -> list[str]:
    """argv run once on `target` (a probe, a rollback command): its exit status is ssh's."""
    return [*_base(config), target, "--", shlex.join(argv)]


def guarded(target: str, argv: Sequence[str], config: Path | str | None = None) -> list[str]:
    """argv run on `target` for as long as the local ssh's stdin stays open (see the module doc)."""
    return [*_base(config), target, "--", shlex.join(["sh", "-c", GUARD, "faultline-process", *argv])]


def tcp_check(target: str, host: str, port: int, timeout_s: float, config: Path | str | None = None) -> list[str]:
    return command(target, ["python3", "-c", TCP_CHECK, host, str(port), f"{timeout_s:g}"], config)
