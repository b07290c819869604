"""The netem lab: runs only where the kernel has netem (the VM stage, `make test-vm`).

Four hosts, one agent (trader's): faults go on trader's interface, towards one peer at a
time, and the other peers show what was not targeted. Each agent compiles its BPF
programs (~30 s under TCG), so the lab is made once per session.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from faultline.controller.agents.client import AgentClient
from faultline.controller.env.lab import Lab, LabConfig
from testkit.netns import tc_state, why_no_lab

VM_LAB = LabConfig(prefix="flv", subnet4="10.80.0.0/24", subnet6="fd80::/64", run_dir=Path("/run/faultline-vm"),
                   ready_timeout_s=300)
RESULTS = "netem-accuracy.json"


def _no_netem() -> str | None:
    from faultline.agent.kernel.capabilities import probe_tc

    why = probe_tc(None).get("netem")
    return f"{why}: the netem tests run inside the VM stage (make test-vm)" if why else None


@pytest.fixture(scope="session")
def accuracy():
    """Requested vs measured, per fault, written where the VM stage brings results out."""
    rows: list[dict[str, object]] = []
    yield rows
    out = Path(os.environ.get("FAULTLINE_VM_OUT", "build/vm-local"))
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps({"kernel": os.uname().release, "rows": rows}, indent=2))


@pytest.fixture(scope="session")
def vlab():
    why = why_no_lab() or _no_netem()
    if why and os.environ.get("FAULTLINE_VM_OUT"):
        pytest.fail(f"inside the VM stage, yet: {why}")  # a VM stage that skips everything proves nothing
    if why:
        pytest.skip(why)
    lab = Lab(VM_LAB)
    lab.down()
    lab.state = lab.up(["trader", "gateway", "broker", "third"], agents=["trader"])
    yield lab
    report = lab.down()
    assert not any("killed" in line for line in report), report


@pytest.fixture
def trader(vlab):
    h = vlab.state.hosts["trader"]
    before = tc_state(h.netns, h.interface)
    with AgentClient(h.agent, timeout_s=30) as c:
        yield c
        c.heal_all()
    assert tc_state(h.netns, h.interface) == before, "trader: tc state changed"
    journal = Path(h.state_dir) / "journal.jsonl"
    assert not journal.exists() or journal.stat().st_size == 0, "trader: journal not empty"


def median(xs: list[float]) -> float:
    assert xs, "no ping came back"
    return statistics.median(xs)
