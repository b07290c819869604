"""What this kernel can do, probed without touching any interface of the host.

qdisc and filter kinds are tried on `lo` of a throwaway network namespace (a forked
child that unshares its network namespace), which vanishes with the child.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
TRACEPOINTS = (
    "sock/inet_sock_set_state",
    "tcp/tcp_retransmit_skb",
    "tcp/tcp_probe",
    "tcp/tcp_send_reset",
    "tcp/tcp_receive_reset",
    "skb/kfree_skb",
)


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool
    reason: str


def _child_probe(bpf_fd: int | None) -> dict[str, str | None]:
    """Runs in the forked child, inside a new network namespace. None means it worked."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from agent.domain.spec import Netem
    from agent.kernel import netem_nla

    netem_nla.register()  # probe with the same encoder the agent applies faults with
    out: dict[str, str | None] = {}
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")

        def attempt(name: str, add: object, undo: object) -> None:
            try:
                add()  # type: ignore[operator]
                out[name] = None
                undo()  # type: ignore[operator]
            except NetlinkError as e:
                out[name] = (f"this kernel has no {name} (ENOENT: not built in, no module)" if e.code == 2
                             else f"kernel refused it: {os.strerror(e.code)} (errno {e.code})")

        attempt("netem", lambda: ipr.tc("add", "netem", lo, "1:", netem=Netem(delay_ns=1_000_000), limit=1000),
                lambda: ipr.tc("del", index=lo, handle="1:", parent=0xFFFFFFFF))
        attempt("htb", lambda: ipr.tc("add", "htb", lo, "1:", default=0x10),
                lambda: ipr.tc("del", "htb", lo, "1:"))
        attempt("clsact", lambda: ipr.tc("add", "clsact", lo), lambda: None)
        if out["clsact"] is None and bpf_fd is not None:
            attempt("cls_bpf", lambda: ipr.tc("add-filter", "bpf", lo, ":1", fd=bpf_fd, name="probe",
                                              parent=0xFFFFFFF3, classid=1, direct_action=True),
                    lambda: None)
        elif bpf_fd is None:
            out["cls_bpf"] = "not tried: no eBPF program could be loaded"
        else:
            out["cls_bpf"] = "not tried: clsact missing"
    return out


def probe_tc(bpf_fd: int | None) -> dict[str, str | None]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's code
        code = 1
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            os.write(w, json.dumps(_child_probe(bpf_fd)).encode())
            code = 0
        except BaseException as e:
            os.write(w, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data or b"{}")


def _tracefs() -> Path | None:
    for p in TRACEFS:
        if (p / "events").is_dir():
            return p
    return None


def headers_feature() -> Feature:
    build = Path("/lib/modules") / platform.release() / "build"
    if not (build / "include").is_dir():
        return Feature("kernel_headers", False, f"{build} missing: bcc cannot compile (run scripts/setup.sh)")
    target = build.resolve().name
    if platform.release().split("-")[0] not in target:
        return Feature("kernel_headers", True, f"{build} -> {target}: not this kernel's own; "
                       "tracepoint and tc programs compile, some structs (skb:kfree_skb) do not")
    return Feature("kernel_headers", True, f"{build} -> {target}")


def probe(bpf_fd: int | None, program_error: str | None) -> list[Feature]:
    feats = [headers_feature()]
    feats.append(Feature("ebpf_tc_program", bpf_fd is not None,
                         program_error or "tc_drop.c compiled and verified"))
    tc = probe_tc(bpf_fd)
    if "error" in tc:
        err = str(tc["error"])
        tc = {k: f"probe failed: {err}" for k in ("netem", "htb", "clsact", "cls_bpf")}
    for name, qualifier in (("clsact", "qdisc"), ("cls_bpf", "classifier"), ("netem", "qdisc"), ("htb", "qdisc")):
        why = tc.get(name)
        feats.append(Feature(name, why is None, f"{qualifier} {name} accepted" if why is None else why))
    tfs = _tracefs()
    for tp in TRACEPOINTS:
        name = "tracepoint:" + tp.replace("/", ":")
        if tfs is None:
            feats.append(Feature(name, False, "tracefs not mounted (mount -t tracefs tracefs /sys/kernel/tracing)"))
        else:
            ok = (tfs / "events" / tp).is_dir()
            feats.append(Feature(name, ok, f"{tfs}/events/{tp}" + ("" if ok else " absent")))
    kp = Path("/sys/bus/event_source/devices/kprobe").exists()
    feats.append(Feature("kprobes", kp, "kprobe PMU present" if kp else "CONFIG_KPROBES is off in this kernel"))
    btf = Path("/sys/kernel/btf/vmlinux").exists()
    feats.append(Feature("btf", btf, "/sys/kernel/btf/vmlinux" + ("" if btf else " absent")))
    return feats
