"""make fresh-check: the README's two commands on a truly fresh Debian 12, from nothing.

Builds a minimal Debian 12 root (debootstrap, variant minbase, plus `make`: the README's
commands start with it), copies in a clean clone of this checkout and only what every
machine of this kind has before any project runs (its registry settings: the CA bundle, the
pip and apt configuration, the environment variables that point at them, DNS), then inside
it (chroot: same kernel, root, /proc /sys /dev /dev/pts /sys/fs/bpf tracefs /run mounted)
runs `make demo`, the unit tests and a small set of lab tests. Every step is timed; the log
(build/fresh/fresh-check.log) lists the packages the project's setup installed there. At the
end it removes its mounts and checks that no mount, namespace or process of the root is left.

    python3 scripts/fresh_check.py [--fresh] [--keep]

--fresh: bootstrap again even if build/fresh/base.tar (a bootstrapped root cached by an
earlier run on this machine) exists. Runs with the system python3 (stdlib only), as root.
Exit 0 passed, 1 failed, 75 could not run here (no debootstrap, no mirror; CI treats it as failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "build" / "fresh"
BASE = OUT / "base.tar"
ROOT = OUT / "root"
LOG = OUT / "fresh-check.log"
MIRROR = "http://deb.debian.org/debian"
EX_UNAVAILABLE = 75
# What every machine of this kind has before a project runs: its registry settings.
# The CA bundle and the local CAs it is made from (Debian's ca-certificates, once the project's
# setup pulls it in, rebuilds the bundle from them).
REGISTRY_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/usr/local/share/ca-certificates", "/etc/pip.conf",
                  "/etc/xdg/pip", "/etc/apt/apt.conf.d/99artifact-registry", "/etc/apt/sources.list.d/debian.sources",
                  "/etc/resolv.conf")
REGISTRY_ENV = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_INDEX_URL",
                "PIP_EXTRA_INDEX_URL", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                "GIT_SSL_CAINFO", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "http_proxy", "https_proxy", "no_proxy")
# Inside the root: one test of each kind (DISCONNECT, LOSS, PROCESS, a scenario) besides the unit tests.
LAB_TESTS = ("tests/lab/test_disconnect.py", "tests/lab/test_loss.py",
             "tests/lab/test_component_faults.py::test_pause_is_a_real_sigstop_resumed_at_heal",
             "tests/lab/test_scenarios.py")
MOUNTS = (("proc", "proc", "proc"), ("sysfs", "sysfs", "sys"), ("/dev", None, "dev"),
          ("/dev/pts", None, "dev/pts"), ("bpf", "bpf", "sys/fs/bpf"), ("tracefs", "tracefs", "sys/kernel/tracing"),
          ("tmpfs", "tmpfs", "run"))


class CannotRun(Exception):
    """This machine cannot run the check (no debootstrap, no mirror)."""


class Log:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w")
        self.steps: list[tuple[str, float, bool]] = []

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()

    def run(self, name: str, argv: list[str], *, chroot: bool = False, tail: int = 15,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """One timed step; its whole output goes to the log, its last lines to the screen."""
        if chroot:
            argv = ["chroot", str(ROOT), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in chroot_env().items()),
                    "/bin/bash", "-c", " ".join(argv)]
        self.say(f"\n== {name}")
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        took = time.monotonic() - t0
        self.file.write(r.stdout + r.stderr)
        for line in (r.stdout + r.stderr).strip().splitlines()[-tail:] if tail else ():
            print("   " + line)
        ok = r.returncode == 0
        self.steps.append((name, took, ok))
        self.say(f"== {name}: {'ok' if ok else f'FAILED (exit {r.returncode})'} in {took:.0f} s")
        return r


def chroot_env() -> dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    env.update({k: os.environ[k] for k in REGISTRY_ENV if k in os.environ})
    if "CI" in os.environ:
        env["CI"] = os.environ["CI"]
    return env


def need_debootstrap(log: Log) -> None:
    if shutil.which("debootstrap"):
        return
    log.say("fresh-check: installing debootstrap on this machine (it builds the fresh root)")
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
                       capture_output=True, text=True, check=False,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if r.returncode != 0 or not shutil.which("debootstrap"):
        raise CannotRun(f"debootstrap could not be installed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def bootstrap(log: Log, fresh: bool) -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    if BASE.exists() and not fresh:
        log.say(f"fresh-check: base root from {BASE} (an earlier bootstrap on this machine; --fresh redoes it)")
        ROOT.mkdir(parents=True)
        log.run("unpack the cached base root", ["tar", "-C", str(ROOT), "-xf", str(BASE)])
        return
    r = log.run("debootstrap bookworm (minbase + make)",
                ["debootstrap", "--variant=minbase", "--include=make", "bookworm", str(ROOT), MIRROR])
    if r.returncode != 0:
        raise CannotRun(f"debootstrap from {MIRROR} failed (mirror unreachable?); see {LOG}")
    log.run("cache the base root", ["tar", "-C", str(ROOT), "-cf", str(BASE), "."])


def furnish(log: Log) -> None:
    """The machine's registry settings and a clean clone of the checkout; nothing else."""
    for f in REGISTRY_FILES:
        src, dst = Path(f), ROOT / f.lstrip("/")
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.unlink(missing_ok=True)
            shutil.copy2(src, dst)
    if (ROOT / "etc/apt/sources.list.d/debian.sources").exists():
        (ROOT / "etc/apt/sources.list").unlink(missing_ok=True)  # the machine's sources replace debootstrap's
    log.say("fresh-check: copied in " + ", ".join(f for f in REGISTRY_FILES if Path(f).exists()))
    log.run("clean clone of the checkout", ["git", "clone", "-q", "--no-local", str(REPO),
                                            str(ROOT / "root" / "faultline")])


def mount_all(log: Log) -> None:
    # The root a mount point of its own, as a real system's is: `ip netns exec` makes / rslave.
    subprocess.run(["mount", "--bind", str(ROOT), str(ROOT)], check=True)
    for src, fstype, where in MOUNTS:
        target = ROOT / where
        target.mkdir(parents=True, exist_ok=True)
        argv = ["mount", "--bind", src, str(target)] if fstype is None else ["mount", "-t", fstype, src, str(target)]
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    log.say("fresh-check: mounted " + ", ".join("/" + m[2] for m in MOUNTS))


def our_mounts() -> list[str]:
    prefix = str(ROOT) + "/"
    with open("/proc/mounts") as f:
        return [m for m in (line.split()[1] for line in f) if m.startswith(prefix) or m == str(ROOT)]


def processes_in_root() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(ROOT):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def new_lab_links(before: set[str]) -> set[str]:
    """Links that appeared during the check and are named as the labs inside the root name
    theirs (the demo's fld-, the tests' flt-, a lab's fl-); never anything else on this machine."""
    return {n for n in host_links() - before if n.startswith(("fld-", "flt-", "fl-"))}


def tear_down(log: Log, links_before: set[str]) -> list[str]:
    """Stop what runs in the root, remove the labs it made, unmount; what is left, if anything."""
    if (ROOT / "root/faultline/.venv/bin/faultline").exists() and (ROOT / "proc/self").exists():
        log.run("lab down inside the root", ["cd /root/faultline && .venv/bin/faultline lab down"], chroot=True,
                tail=3)
    for sig in (15, 9):
        for pid in processes_in_root():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while processes_in_root() and time.monotonic() < deadline:
            time.sleep(0.1)
    for target in reversed(our_mounts()):
        if subprocess.run(["umount", target], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    # A namespace made inside the root is a mount under the root's /run/netns: unmounted above,
    # it is gone with the last process in it. A lab that failed part way inside the root may
    # leave its bridge in this (shared) network namespace, its record gone with the root's /run.
    for name in sorted(new_lab_links(links_before)):
        r = subprocess.run(["ip", "link", "del", name], capture_output=True, text=True, check=False)
        log.say(f"fresh-check: removed link {name}, made inside the root and left by a lab that failed"
                if r.returncode == 0 else f"fresh-check: could not remove link {name}: {r.stderr.strip()}")
    left = [f"link {n}" for n in sorted(new_lab_links(links_before))]
    return left + [f"mount {m}" for m in our_mounts()] + [f"process {p}" for p in processes_in_root()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fresh", action="store_true", help="bootstrap again, ignoring a cached base root")
    ap.add_argument("--keep", action="store_true", help="leave build/fresh/root for a look (still unmounted)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("fresh-check: needs root (debootstrap, chroot, mounts, network namespaces)", file=sys.stderr)
        return 1
    log = Log(LOG)
    t0 = time.monotonic()
    links_before = host_links()
    failed, left = False, []
    try:
        need_debootstrap(log)
        bootstrap(log, a.fresh)
        furnish(log)
        mount_all(log)
        before = log.run("packages in the bare root", ["dpkg-query -W -f='${Package}\\n' | sort"], chroot=True,
                         tail=0).stdout.split()
        cd = "cd /root/faultline &&"
        demo = log.run("make demo", [cd, "make demo"], chroot=True, tail=40)
        after = log.run("packages after make demo", ["dpkg-query -W -f='${Package}\\n' | sort"], chroot=True,
                        tail=0).stdout.split()
        added = sorted(set(after) - set(before))
        log.say(f"fresh-check: the project's setup installed {len(added)} packages: {' '.join(added)}")
        unit = log.run("unit tests", [cd, ".venv/bin/python -m pytest -q -p no:cacheprovider tests/unit"],
                       chroot=True, tail=3)
        lab = log.run("lab tests (DISCONNECT, LOSS, PROCESS, scenarios)",
                      [cd, ".venv/bin/python -m pytest -q -p no:cacheprovider -rs", *LAB_TESTS], chroot=True, tail=5)
        failed = any(r.returncode != 0 for r in (demo, unit, lab)) or "RECOVERY SCORECARD" not in demo.stdout
        if "RECOVERY SCORECARD" not in demo.stdout:
            log.say("fresh-check: make demo did not end in the RECOVERY SCORECARD")
    except CannotRun as e:
        log.say(f"fresh-check: cannot run here: {e}")
        return EX_UNAVAILABLE
    except Exception as e:
        log.say(f"fresh-check: FAILED: {type(e).__name__}: {e}")
        failed = True
    finally:
        left = tear_down(log, links_before)
        if not a.keep and not left:
            shutil.rmtree(ROOT, ignore_errors=True)
    log.say("\nfresh-check steps:")
    for name, took, ok in log.steps:
        log.say(f"  {took:7.0f} s  {'ok    ' if ok else 'FAILED'}  {name}")
    log.say(f"  {time.monotonic() - t0:7.0f} s  in all; log {LOG}")
    if left:
        log.say("fresh-check: LEFT BEHIND: " + "; ".join(left))
        return 1
    log.say("fresh-check: " + ("FAILED" if failed else "passed") + "; nothing left behind (mounts, processes, links)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
