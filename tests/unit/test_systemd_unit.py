"""The agent's unit file passes systemd-analyze verify, keeps its hardening, and cleans up after any stop."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faultline.agent.domain import policy as policies

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "faultline-agent.service"


@pytest.fixture
def unit(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's binary exists: point it at this checkout's venv.
    f = tmp_path / "faultline-agent.service"
    f.write_text(UNIT.read_text().replace("/opt/faultline/.venv", str(Path(sys.executable).parent.parent)))
    return f


def test_verify_passes(unit):
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_hardening_and_cleanup(unit):
    text = UNIT.read_text()
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    assert caps == ["CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_KILL",
                    "CAP_SYS_PTRACE"]
    for cap in caps:  # each capability says why, in a comment
        assert re.search(rf"^#\s+{cap}\s+\S", text, re.M), cap
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "StateDirectory=faultline", "Restart=on-failure",
                 "ExecStopPost=/opt/faultline/.venv/bin/faultline-agent cleanup --state-dir /var/lib/faultline"):
        assert line in text.splitlines(), line
    assert "--insecure" not in text and "--tls-dir /etc/faultline/tls" in text
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True,
                       check=False)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert level and float(level.group(1)) < 5.0, r.stdout[-500:]


def test_shipped_policy_is_conservative_and_loads():
    p = policies.load(ROOT / "contracts" / "agent-policy.yaml")
    assert p.interfaces == frozenset() and p.max_lease_s <= 300 and not p.allow_process_faults
    assert p.peer_cidrs and all(n.is_private for n in p.peer_cidrs)
    assert p.allowed_clients == frozenset({"CN=faultline-controller"})
