#!/usr/bin/env bash
# Install the faultline agent on a Debian/Ubuntu host (root): OS packages and venv under
# /opt/faultline (scripts/setup.sh), the systemd unit, a conservative policy, mTLS material.
# Re-running is safe: nothing that exists (policy, certificates) is overwritten, except the
# certificates TLS_FROM names (a rotation: the running agent reloads them).
#
#   sudo TLS_FROM=DIR scripts/install.sh [--no-start]      (make install TLS_FROM=DIR)
#       DIR: this host's ca.pem, agent.pem, agent-key.pem, from the controller's
#       `faultline certs issue-agent CA_DIR HOST --ip ADDR --out DIR` (one CA for the fleet)
#   sudo scripts/install.sh [--agent-host NAME_OR_IP ...] [--no-start]
#       no TLS_FROM, no certificates yet: a CA of this host's own (a one-host setup)
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
if [ -n "${TLS_FROM:-}" ]; then
  for f in ca.pem agent.pem agent-key.pem; do
    [ -f "$TLS_FROM/$f" ] || { echo "install: TLS_FROM=$TLS_FROM lacks $f (faultline certs issue-agent makes it)" >&2; exit 2; }
  done
  install -d -m 0700 -o root -g root "$ETC/tls"
  install -m 0644 -o root -g root "$TLS_FROM/ca.pem" "$TLS_FROM/agent.pem" "$ETC/tls/"
  install -m 0600 -o root -g root "$TLS_FROM/agent-key.pem" "$ETC/tls/"
  echo "install: $ETC/tls from $TLS_FROM (this host's certificate under the fleet's CA)"
  if [ -d /run/systemd/system ] && systemctl -q is-active faultline-agent 2>/dev/null; then
    systemctl reload faultline-agent && echo "install: the running agent reloaded its certificates"
  fi
elif [ ! -f "$ETC/tls/ca.pem" ]; then
  # By default the names this host answers to, localhost included (`faultline health` on the host).
  [ ${#hosts[@]} -gt 0 ] || hosts=("$(hostname -f 2>/dev/null || hostname)" $(hostname -I 2>/dev/null) localhost 127.0.0.1)
  args=()
  for h in "${hosts[@]}"; do args+=(--agent-host "$h"); done
  "$PREFIX/.venv/bin/faultline" certs init "$ETC/tls" "${args[@]}"
  chmod 0700 "$ETC/tls"
  echo "install: a CA of this host's own in $ETC/tls (one-host setup); for a fleet, keep one CA on the" \
       "controller and install each host with TLS_FROM (faultline certs issue-agent)"
fi

install -m 0644 "$src/systemd/faultline-agent.service" "$UNIT_DIR/faultline-agent.service"
if [ "$start" -eq 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now faultline-agent
  systemctl --no-pager status faultline-agent | head -5
else
  echo "install: unit installed; start it with: systemctl daemon-reload && systemctl enable --now faultline-agent"
fi
