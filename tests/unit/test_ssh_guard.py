"""The guard a scenario's process runs under on a real host (env/ssh.py), run here with the local
sh as sshd would run it: the process lives while its stdin (the ssh channel) is open, gets SIGTERM
at EOF and is waited for; its own exit ends the guard with its status."""

from __future__ import annotations

import subprocess
import sys

from faultline.controller.env import ssh

TRAP = ("import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('drained'), sys.exit(7)))\n"
        "print('ready', flush=True)\ntime.sleep(60)\n")


def guard(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["sh", "-c", ssh.GUARD, "faultline-process", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_eof_on_the_channel_stops_the_process_gracefully():
    p = guard(sys.executable, "-u", "-c", TRAP)
    try:
        assert p.stdout.readline() == "ready\n"  # its SIGTERM handler is in place
        p.stdin.close()  # the controller stopped it, or died
        p.wait(timeout=10)
        out = p.stdout.read()
        assert p.returncode == 7 and "drained" in out  # its SIGTERM handler ran; its status came back
    finally:
        if p.poll() is None:
            p.kill()


def test_the_process_ending_ends_the_guard_with_its_status():
    p = guard("sh", "-c", "echo done; exit 3")
    out = p.stdout.read()  # the channel (stdin) stays open: only the process ends
    assert p.wait(timeout=10) == 3 and out == "done\n"
    p.stdin.close()


def test_the_remote_command_is_quoted_whole():
    argv = ssh.guarded("qa@db1", ["psql", "-c", "select 'x; rm -rf /'"], config="/tmp/cfg")
    assert argv[:2] == ["ssh", "-T"] and "-F" in argv and argv[-3:-1] == ["qa@db1", "--"]
    assert "'select '\"'\"'x; rm -rf /'\"'\"''" in argv[-1]
