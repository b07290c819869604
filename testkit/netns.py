"""Test helpers: sockets inside lab namespaces, tc state as JSON, commands in a namespace."""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

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


def listener(ns: str, addr: str, port: int) -> socket.socket:
    """A TCP socket listening on addr:port inside namespace `ns` (address reusable at once)."""
    s = socket_in(ns, socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    return s


def tc_state(ns: str, dev: str) -> dict[str, object]:
    """Qdiscs and filters of `dev` in `ns` ("": this namespace), as the tc tool reports them
    (independent of the agent)."""
    inside = ["ip", "netns", "exec", ns] if ns else []

    def tc(*args: str) -> object:
        r = subprocess.run([*inside, "tc", "-j", "-d", *args], capture_output=True, text=True, check=True)
        return json.loads(r.stdout or "[]")

    return {
        "qdisc": tc("qdisc", "show", "dev", dev),
        "ingress": tc("filter", "show", "dev", dev, "ingress"),
        "egress": tc("filter", "show", "dev", dev, "egress"),
    }


def without_agent(state: dict[str, object]) -> dict[str, object]:
    """What tc_state is with no agent running: the agent keeps an (empty) clsact on its allowed
    interfaces while it runs, and removes it when it stops."""
    return {**state, "qdisc": [q for q in state["qdisc"] if q.get("kind") != "clsact"]}  # type: ignore[union-attr]


def ping_gaps(out: str) -> tuple[int, list[int]]:
    """(replies, sequence numbers lost before the last reply) from `ping -n` output. Stopped
    with SIGINT, ping counts an echo still in flight as lost; only a gap is a real loss."""
    seqs = {int(x) for x in re.findall(r"icmp_seq=(\d+)", out)}
    return len(seqs), [i for i in range(1, max(seqs, default=0)) if i not in seqs]


def in_ns(ns: str, *argv: str) -> list[str]:
    return [sys.executable, "-m", "faultline.controller.env.nsexec", ns, "--", *argv]


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.02) -> object:
    """condition()'s first truthy value, polled until the deadline; AssertionError naming `what` after it."""
    deadline = time.monotonic() + timeout_s
    while not (got := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(every_s)
    return got


def proc_state(pid: int) -> str:
    """The process state letter from /proc (S sleeping, T stopped, R running), '' once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text[text.rindex(")") + 2]


def netns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def in_netns(pid: int, ns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == netns_inode(ns)
    except OSError:
        return False


def listening(pid: int, port: int) -> bool:
    """Does a TCP socket listen on `port` in pid's network namespace (read from /proc/PID/net/tcp*)."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: TCP_LISTEN
                return True
    return False


def serving(pid: int, ns: str, port: int, timeout_s: float = 20.0) -> None:
    """Wait until `pid`, started in `ns` through in_ns/exec_argv, listens on `port` there."""
    def ready() -> bool:
        if proc_state(pid) in ("", "Z"):
            raise AssertionError(f"pid {pid} exited before listening on {port} in {ns}")
        return in_netns(pid, ns) and listening(pid, port)
    wait_until(ready, timeout_s, f"pid {pid} listening on {port} in {ns}")


def read_until(stream: IO[str], pattern: str, timeout_s: float) -> str:
    """Lines of a child's text stdout up to and including the first that matches `pattern`."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise AssertionError(f"no line matching {pattern!r} within {timeout_s:g} s; got {''.join(seen)!r}")
        line = stream.readline()
        if not line:
            raise AssertionError(f"the stream ended before a line matching {pattern!r}; got {''.join(seen)!r}")
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)


def runs(pid: int, argv: Sequence[str]) -> bool:
    """Is pid's command line exactly argv."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0") == "\0".join(argv).encode()
    except OSError:
        return False


def pids_running(argv: Sequence[str]) -> list[int]:
    """Pids whose command line is exactly argv (what pgrep -f would find, without pgrep)."""
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and runs(int(e.name), argv)]


def started_in(pid: int, ns: str, argv: Sequence[str], state: str = "S", timeout_s: float = 20.0) -> None:
    """Wait until `pid` (started through in_ns, which execs) is inside `ns`, runs `argv` and is in `state`.

    in_ns starts Python, enters the namespace and then execs the command: until then the pid
    is not yet in the namespace, or is the wrong program, or still running.
    """
    wait_until(lambda: runs(pid, argv) and in_netns(pid, ns) and proc_state(pid) == state, timeout_s,
               f"pid {pid} running {' '.join(argv)} in {ns}, state {state}")


def udp_delivered(src_ns: str, dst_ns: str, dst_ip: str, port: int, n: int) -> set[int]:
    """Send `n` numbered UDP datagrams from `src_ns` to dst_ip:port in `dst_ns`; the numbers that arrived.

    Paced so that only a fault can drop: the receiver's queue never overflows.
    """
    family = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET
    rx = socket_in(dst_ns, family, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind((dst_ip, port))
    rx.settimeout(1.0)
    tx = socket_in(src_ns, family, socket.SOCK_DGRAM)
    seen: set[int] = set()

    def drain() -> None:
        while True:
            try:
                data = rx.recv(64)
            except TimeoutError:
                return
            seen.add(int.from_bytes(data[:4], "big"))

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        for seq in range(n):
            tx.sendto(seq.to_bytes(4, "big") + b"x" * 28, (dst_ip, port))
            if seq % 50 == 49:
                time.sleep(0.002)
        reader.join()
    finally:
        tx.close()
        rx.close()
    return seen


def why_no_lab() -> str | None:
    """Why lab tests cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root: network namespaces, tc and BPF"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "needs bcc (python3-bpfcc): run scripts/setup.sh"
    if shutil.which("tc") is None:
        return "needs iproute2's tc to observe kernel state independently of the agent"
    return None


RTT_RE = re.compile(r"time=([\d.]+) ms")


def ping_ms(lab: Any, src: str, dst_ip: str, count: int, interval_s: float = 0.02) -> list[float]:
    """Round-trip times of `count` pings from lab host `src` (its namespace) to dst_ip, in ms."""
    ns = lab.state.hosts[src].netns
    r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", str(interval_s),
                        "-W", "8", dst_ip], capture_output=True, text=True, check=False)
    return [float(x) for x in RTT_RE.findall(r.stdout)]
