#!/usr/bin/env bash
# Install the faultline agent on a Debian/Ubuntu host (root): OS packages and venv under
# /opt/faultline (scripts/setup.sh), the systemd unit, a conservative policy, mTLS material.
# Re-running is safe: nothing that exists (policy, certificates) is overwritten.
#
#   sudo scripts/install.sh [--agent-host NAME_OR_IP ...] [--no-start]
set -euo pipefail
PREFIX=${PREFIX:-/opt/faultline}
ETC=${ETC:-/etc/faultline}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
start=1
hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --agent-host) hosts+=("$2"); shift 2 ;;
    --no-start) start=0; shift ;;
    *) echo "usage: $0 [--agent-host NAME_OR_IP ...] [--no-start]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "install: run as root" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)

echo "install: code to $PREFIX"
mkdir -p "$PREFIX"
tar -C "$src" --exclude=.venv --exclude=build --exclude=.git -cf - . | tar -C "$PREFIX" -xf -
echo "install: OS packages, kernel headers, venv"
(cd "$PREFIX" && FAULTLINE_EXTRAS=none ./scripts/setup.sh)

mkdir -p "$ETC" && chmod 0755 "$ETC"
if [ ! -f "$ETC/agent.yaml" ]; then
  install -m 0644 "$src/contracts/agent-policy.yaml" "$ETC/agent.yaml"
  echo "install: wrote $ETC/agent.yaml (conservative: list the interfaces that may be faulted)"
fi
if [ ! -f "$ETC/tls/ca.pem" ]; then
  # By default the names this host answers to, localhost included (`faultline health` on the host).
  [ ${#hosts[@]} -gt 0 ] || hosts=("$(hostname -f 2>/dev/null || hostname)" $(hostname -I 2>/dev/null) localhost 127.0.0.1)
  args=()
  for h in "${hosts[@]}"; do args+=(--agent-host "$h"); done
  "$PREFIX/.venv/bin/faultline" certs init "$ETC/tls" "${args[@]}"
  echo "install: copy $ETC/tls/{ca.pem,controller.pem,controller-key.pem} to the controller" \
       "(FAULTLINE_TLS_DIR); keep ca-key.pem off production hosts once you have issued what you need"
fi

install -m 0644 "$src/systemd/faultline-agent.service" "$UNIT_DIR/faultline-agent.service"
if [ "$start" -eq 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now faultline-agent
  systemctl --no-pager status faultline-agent | head -5
else
  echo "install: unit installed; start it with: systemctl daemon-reload && systemctl enable --now faultline-agent"
fi
