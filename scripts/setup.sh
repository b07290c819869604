#!/usr/bin/env bash
# Idempotent setup for a Debian 12 host: OS packages, kernel headers for bcc, the venv.
# Safe to run again: each step checks before it changes anything.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.faultline-setup"

need_root() { [ "$(id -u)" = 0 ] || { echo "setup: must run as root (bcc, tc and netns need it)" >&2; exit 1; }; }
need_root

# The packages of the programs the code runs (scripts/programs.txt, group core; --with-vm adds
# group vm), and what they run on: Debian's bcc, the kernel headers it compiles against, the venv.
programs_of() { awk -v g="$1" '!/^#/ && NF >= 3 && $3 == g { print $2 }' scripts/programs.txt | sort -u; }
pkgs=(python3-bpfcc bpfcc-tools python3-venv linux-headers-amd64)
mapfile -t -O ${#pkgs[@]} pkgs < <(programs_of core)
# --with-vm (make test, make bench): the VM stage's Debian kernel (it has netem, which some
# hosts' kernels lack), booted by virtme-ng under qemu (busybox-static is its guest init),
# and the benchmarks' tools. Installing the image does not change what this host boots;
# an agent-only host needs none of it.
if [ "${1:-}" = "--with-vm" ]; then
  pkgs+=(linux-image-amd64 busybox-static)
  mapfile -t -O ${#pkgs[@]} pkgs < <(programs_of vm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing OS packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The VM's kernel needs its own headers (bcc compiles inside the VM against them).
if [ "${1:-}" = "--with-vm" ]; then
  vmkernel=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n1)
  vmver=${vmkernel#/boot/vmlinuz-}
  if [ -n "$vmver" ] && [ ! -e "/lib/modules/$vmver/build/include" ]; then
    echo "setup: installing linux-headers-$vmver for the VM's kernel"
    apt-get install -y -qq --no-install-recommends "linux-headers-$vmver" >/dev/null
  fi
fi

# bcc compiles against /lib/modules/$(uname -r)/build. Use the running kernel's own headers
# when the distribution has them; otherwise link the distribution's default headers.
kver=$(uname -r)
moddir=/lib/modules/$kver
if [ ! -e "$moddir/build/include" ]; then
  if apt-get install -y -qq --no-install-recommends "linux-headers-$kver" >/dev/null 2>&1; then
    echo "setup: installed linux-headers-$kver"
  else
    amd64=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)
    [ -n "$amd64" ] && [ -n "$common" ] || { echo "setup: no kernel headers found under /usr/src" >&2; exit 1; }
    mkdir -p "$moddir"
    ln -sfn "$amd64" "$moddir/build"
    ln -sfn "$common" "$moddir/source"
    echo "setup: no headers package for kernel $kver; linked $(basename "$amd64") as $moddir/build (tracepoint and tc programs compile with it)"
  fi
fi

# tracefs for tracepoint probes.
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi

# The venv sees Debian's bcc (system site packages); everything else comes from PyPI.
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "setup: installing faultline into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  # An agent host (scripts/install.sh) needs no test tools: FAULTLINE_EXTRAS=none.
  if [ "${FAULTLINE_EXTRAS:-dev}" = none ]; then "$VENV/bin/pip" install -q -e .
  else "$VENV/bin/pip" install -q -e ".[${FAULTLINE_EXTRAS:-dev}]"; fi
  touch "$STAMP"
fi
"$VENV/bin/python" -c 'import bcc' 2>/dev/null || { echo "setup: bcc is not importable from $VENV" >&2; exit 1; }
