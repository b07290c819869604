"""A lab of three hosts for the whole session; every test leaves it as it found it."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultline.controller.agents.client import AgentClient
from faultline.controller.env.lab import Lab, LabConfig
from testkit.netns import tc_state, why_no_lab

TEST_LAB = LabConfig(prefix="flt", subnet4="10.78.0.0/24", subnet6="fd78::/64",
                     run_dir=Path("/run/faultline-test"))


@pytest.fixture(scope="session")
def lab():
    why = why_no_lab()
    if why:
        pytest.skip(why)
    lab = Lab(TEST_LAB)
    lab.down()  # anything a killed earlier run left
    state = lab.up(["trader", "gateway", "broker"])
    lab.state = state
    yield lab
    report = lab.down()
    assert not any("killed" in line for line in report), report


@pytest.fixture
def agents(lab):
    clients = {name: AgentClient(h.agent) for name, h in lab.state.hosts.items()}
    before = {name: tc_state(h.netns, h.interface) for name, h in lab.state.hosts.items()}
    yield clients
    for c in clients.values():
        c.heal_all()
        c.close()
    # Nothing left behind: every test ends with the kernel as it began and empty journals.
    for name, h in lab.state.hosts.items():
        assert tc_state(h.netns, h.interface) == before[name], f"{name}: tc state changed"
        journal = Path(h.state_dir) / "journal.jsonl"
        assert not journal.exists() or journal.stat().st_size == 0, f"{name}: journal not empty"
