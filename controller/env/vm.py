"""A VM with a distribution kernel (netem, kprobes, matching headers) for what this host's kernel lacks.

virtme-ng boots Debian's linux-image-amd64 with this machine's filesystem as the VM's
root (read-only, overlays for /etc, /tmp...), so the checkout and its venv are already
there. One directory is shared read-write to bring results out. KVM is used only when
asked for (on the Firecracker hosts /dev/kvm exists but a KVM guest hangs at boot):
TCG boots in ~30 s and compiles a bcc program in ~30 s, so batch work per boot.

With `systemd=True` the VM boots with systemd as PID 1 (vng --systemd; multi-user in ~2 min
under TCG). On a host that is itself a container image (/.dockerenv) systemd in the VM would
believe it is in Docker: it then reads the kernel command line from its own argv and starts no
serial getty, so virtme-ng's init (overlays, --rwdir, --exec) never runs. The VM's root is then
this filesystem through an overlay, in a private mount namespace, that hides those markers:
nothing on the host changes and the mounts end with the VM.
"""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from faultline.controller.env.programs import MissingProgram, require

REPO = Path(__file__).resolve().parents[2]
RC_FILE = "rc"
EX_UNAVAILABLE = 75  # exit code of `faultline vm` when no VM can start (EX_TEMPFAIL)


class VmUnavailable(RuntimeError):
    """The VM cannot be started here; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class VmConfig:
    kernel: str = ""        # default: the newest /boot/vmlinuz-*-amd64
    memory: str = "2G"
    cpus: int = 2
    kvm: bool = False
    timeout_s: float = 900.0
    systemd: bool = False   # systemd as PID 1 (units, systemctl, systemd-run) instead of virtme's init


# Files that make systemd think it runs in a container (src/basic/virt.c, detect_container_files).
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")


def find_kernel() -> str:
    """The newest Debian kernel whose headers are installed too (bcc compiles against them)."""
    kernels = sorted(glob.glob("/boot/vmlinuz-*-amd64"))
    if not kernels:
        raise VmUnavailable("no /boot/vmlinuz-*-amd64: apt-get install linux-image-amd64 (scripts/setup.sh does)")
    with_headers = [k for k in kernels if Path(f"/lib/modules/{k.split('vmlinuz-', 1)[1]}/build/include").exists()]
    if not with_headers:
        raise VmUnavailable(f"no headers for {', '.join(kernels)}: apt-get install linux-headers-amd64 "
                            "matching linux-image-amd64 (scripts/setup.sh does)")
    return with_headers[-1]


def vng_path() -> str:
    try:
        found = require("vng", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        require("qemu-system-x86_64")
    except MissingProgram as e:
        raise VmUnavailable(str(e)) from None
    return found


def inner_script(command: Sequence[str], out: Path) -> str:
    """What runs inside the guest: the kernel modules the lab needs, tracefs, then `command`."""
    venv_bin = Path(sys.executable).parent
    return "; ".join([
        "for m in sch_netem sch_htb sch_prio cls_bpf cls_u32 sch_ingress ifb veth bridge; do modprobe -q $m; done",
        "mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing",
        f"cd {shlex.quote(str(REPO))}",
        f"export PATH={shlex.quote(str(venv_bin))}:$PATH FAULTLINE_VM_OUT={shlex.quote(str(out))}",
        f"{shlex.join(command)} > {shlex.quote(str(out / 'output.log'))} 2>&1",
        f"echo $? > {shlex.quote(str(out / RC_FILE))}",
    ])


def _marker_free_root(out: Path) -> tuple[list[str], str] | None:
    """(command prefix, guest root) that hide CONTAINER_MARKERS from the VM; None if none exist.

    The prefix runs what follows it in a private mount namespace (unshare -m): a tmpfs on /mnt
    holds an overlay of / whose upper layer whites out the markers, and `out` is bound in from
    the real tree so results still land on the host. All of it vanishes when vng exits.
    """
    present = [m for m in CONTAINER_MARKERS if os.path.exists(m)]
    if not present:
        return None
    root = "/mnt/faultline-vmroot"
    script = "; ".join([
        "set -e",
        "mount -t tmpfs -o mode=0755 faultline-vm /mnt",
        f"mkdir -p /mnt/upper /mnt/work {root}",
        f"mount -t overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work faultline-vmroot {root}",
        f"rm -f {' '.join(shlex.quote(root + m) for m in present)}",
        f"mount --bind {shlex.quote(str(out))} {shlex.quote(root + str(out))}",
        'exec "$@"',
    ])
    return [require("unshare"), "-m", "--propagation", "private", "sh", "-c", script, "vm-root"], root


def run(command: Sequence[str], out: Path, config: VmConfig = VmConfig(),
        progress: Callable[[str], None] = lambda _: None) -> int:
    """Boot, run `command` in the checkout inside the guest, power off. Returns its exit code.

    Its output is in out/output.log; anything it writes under $FAULTLINE_VM_OUT comes out too.
    """
    vng = vng_path()
    kernel = config.kernel or find_kernel()
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / RC_FILE, out / "output.log"):
        stale.unlink(missing_ok=True)
    prefix: list[str] = []
    root_args: list[str] = []
    rwdir = str(out)
    if config.systemd:
        try:
            hidden = _marker_free_root(out)
        except MissingProgram as e:
            raise VmUnavailable(str(e)) from None
        if hidden:
            prefix, root = hidden
            root_args, rwdir = ["--root", root], root + str(out)
    argv = [*prefix, vng, *(["--systemd"] if config.systemd else []), *([] if config.kvm else ["--disable-kvm"]),
            *root_args, "--run", kernel, "--memory", config.memory, "--cpus", str(config.cpus),
            "--rwdir", rwdir, "--exec", inner_script(command, out)]
    env = dict(os.environ, PATH=f"{Path(vng).parent}:{os.environ.get('PATH', '')}")
    boot = f"{'systemd as PID 1, ' if config.systemd else ''}{'KVM' if config.kvm else 'TCG'}"
    progress(f"booting {Path(kernel).name} ({boot}), running: {shlex.join(command)}")
    started = time.monotonic()
    console = out / "console.log"
    with console.open("wb") as log:
        try:
            subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           env=env, timeout=config.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise VmUnavailable(f"the VM did not finish within {config.timeout_s:.0f}s; see {console}") from None
    rc_file = out / RC_FILE
    if not rc_file.exists():
        raise VmUnavailable(f"the VM exited without running the command (no {rc_file}); see {console}")
    rc = int(rc_file.read_text().strip() or "1")
    progress(f"VM done in {time.monotonic() - started:.0f}s, exit {rc}; output in {out / 'output.log'}")
    return rc
