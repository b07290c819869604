"""What this kernel can do, probed without touching any interface of the host.

qdisc and filter kinds are tried on `lo` of a throwaway network namespace (a forked
child that unshares its network namespace), which vanishes with the child.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_REC, MS_SLAVE = 0x4000, 0x80000
SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool
    reason: str


def _child_probe(bpf_fd: int | None) -> dict[str, str | None]:
    """Runs in the forked child, inside a new network namespace. None means it worked."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from faultline.agent.domain.spec import Netem
    from faultline.agent.kernel import netem_nla

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
            out["cls_bpf"] = "not tried: the kernel refused even a 2-instruction BPF program"
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


def tracefs_problem() -> str:
    """Why the TCP probes cannot attach ("" when tracefs shows them): bcc finds tracepoints there."""
    tfs = _tracefs()
    if tfs is None:
        return (f"tracefs is not mounted at {TRACEFS[0]} in the agent's mount namespace (an `ip netns exec` "
                "remounts /sys without it), and the agent could not mount it")
    if not (tfs / "events/sock/inet_sock_set_state").is_dir():
        return f"{tfs}/events has no sock:inet_sock_set_state tracepoint"
    return ""


def mount_tracefs_privately() -> str:
    """Where tracefs is missing, mount it in a mount namespace of the agent's own (the host's view of
    /sys is left as it was). Call before any thread exists: unshare(CLONE_NEWNS) refuses a threaded
    process. Returns "" when tracefs is there (already, or now), else why not."""
    if _tracefs() is not None:
        return ""
    libc = ctypes.CDLL(None, use_errno=True)
    steps = ((lambda: libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)"),
             # Slave: mounts the host makes (e.g. `ip netns add`) still reach us; ours never reach it.
             (lambda: libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /"),
             (lambda: libc.mount(b"tracefs", str(TRACEFS[0]).encode(), b"tracefs", 0, None),
              f"mount -t tracefs tracefs {TRACEFS[0]}"))
    for call, what in steps:
        if call() != 0:
            err = ctypes.get_errno()
            return f"{what}: {os.strerror(err)}"
    return ""


def kfree_skb_feature() -> Feature:
    """Present or not; never compiled at start: faultline does not use it, and a compile costs
    ~1 s here, ~35 s under TCG (a bcc compile of it fails with headers older than the kernel)."""
    name = "tracepoint:skb:kfree_skb"
    tfs = _tracefs()
    if tfs is None or not (tfs / "events/skb/kfree_skb").is_dir():
        return Feature(name, False, "absent (or tracefs not mounted)")
    return Feature(name, False, "present; not compile-checked (faultline does not use it)")


def observation_features(status: dict[str, tuple[bool, str]] | None, why_none: str) -> list[Feature]:
    """One feature per TCP probe (tracepoint name -> (verified, reason)), then kfree_skb and kprobes."""
    feats = []
    if status is None:
        feats.append(Feature("tcp_observation", False, why_none))
    else:
        feats += [Feature(f"tracepoint:{tp}", ok, why) for tp, (ok, why) in status.items()]
    feats.append(kfree_skb_feature())
    kp = Path("/sys/bus/event_source/devices/kprobe").exists()
    feats.append(Feature("kprobes", kp, "kprobe PMU present" if kp else "CONFIG_KPROBES is off in this kernel"))
    return feats


def headers_feature() -> Feature:
    build = Path("/lib/modules") / platform.release() / "build"
    if not (build / "include").is_dir():
        return Feature("kernel_headers", False, f"{build} missing: bcc cannot compile (run scripts/setup.sh)")
    target = build.resolve().name
    if platform.release().split("-")[0] not in target:
        return Feature("kernel_headers", True, f"{build} -> {target}: not this kernel's own; "
                       "tracepoint and tc programs compile, some structs (skb:kfree_skb) do not")
    return Feature("kernel_headers", True, f"{build} -> {target}")


def trivial_tc_program() -> int | None:
    """A 2-instruction SCHED_CLS program (return TC_ACT_UNSPEC) loaded with the bpf syscall:
    enough to ask the kernel whether it takes a cls_bpf filter, without a bcc compile."""
    insns = struct.pack("<BBhi", 0xB7, 0, 0, -1) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = -1; exit
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, BPF_PROG_LOAD's leading fields
    struct.pack_into("<IIQQ", attr, 0, BPF_PROG_TYPE_SCHED_CLS, 2, ctypes.addressof(code),
                     ctypes.addressof(license_))
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, attr, ctypes.sizeof(attr))
    return fd if fd >= 0 else None


def probe() -> list[Feature]:
    """The kernel's features (the programs' own are the runtime's: they compile in the background)."""
    feats = [headers_feature()]
    bpf_fd = trivial_tc_program()
    try:
        tc = probe_tc(bpf_fd)
    finally:
        if bpf_fd is not None:
            os.close(bpf_fd)
    if "error" in tc:
        err = str(tc["error"])
        tc = {k: f"probe failed: {err}" for k in ("netem", "htb", "clsact", "cls_bpf")}
    for name, qualifier in (("clsact", "qdisc"), ("cls_bpf", "classifier"), ("netem", "qdisc"), ("htb", "qdisc")):
        why = tc.get(name)
        feats.append(Feature(name, why is None, f"{qualifier} {name} accepted" if why is None else why))
    btf = Path("/sys/kernel/btf/vmlinux").exists()
    feats.append(Feature("btf", btf, "/sys/kernel/btf/vmlinux" + ("" if btf else " absent")))
    return feats
