"""Issue 20 must-show 4: a bug inside a run (a step that raises KeyError) makes that scenario
ERROR with its journal, JUnit and timeline written, and the next scenario still runs. The
agents are real gRPC servers on fake mechanisms (no kernel); the probe a real local socket."""

from __future__ import annotations

import json
import socket

import pytest

from faultline.controller.cli.scenarios import run_scenarios
from faultline.controller.model import scenario
from faultline.controller.run import method
from tests.fakes import fake_agent

SCENARIO = """\
title: {title}
hosts:
  trader: {{agent: "{trader}", ipv4: 127.0.0.1, interface: lab0}}
  gateway: {{agent: "{gateway}", ipv4: 127.0.0.2, interface: lab0}}
probes:
  - name: up
    tcp: {{host: 127.0.0.1, port: {port}}}
steady_state: [up]
method:
  - partition: {{a: [trader], b: [gateway], duration_s: 0.2}}
recovery:
  probe: up
  timeout_s: 5
"""


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as s:
        s.listen(64)
        yield s.getsockname()[1]


def test_a_step_that_raises_is_an_error_and_the_next_scenario_still_runs(tmp_path, listener, monkeypatch, capsys):
    with fake_agent(host="127.0.0.1") as (trader, t_engine), fake_agent(host="127.0.0.1") as (gateway, _):
        scns = []
        for title in ("planted bug", "after the bug"):
            f = tmp_path / f"{title.replace(' ', '_')}.yaml"
            f.write_text(SCENARIO.format(title=title, trader=trader, gateway=gateway, port=listener))
            scns.append(scenario.load(f))
        real_specs = method.Method.specs
        calls = []

        def planted(self, step):  # the first scenario's step raises, as a bug in the runner would
            calls.append(self.scn.title)
            if self.scn.title == "planted bug":
                raise KeyError("planted")
            return real_specs(self, step)

        monkeypatch.setattr(method.Method, "specs", planted)
        rc = run_scenarios(scns, tmp_path / "out", quiet=True)
        assert t_engine.list() == []  # nothing left applied on the agents
    out = capsys.readouterr().out
    assert rc == 1 and calls == ["planted bug", "after the bug"], out
    first, second = sorted(d for d in (tmp_path / "out").iterdir() if d.is_dir())
    for d in (first, second):  # each scenario's own files, the failed one's too
        assert {"journal.json", "junit.xml", "timeline.html"} <= {p.name for p in d.iterdir()}, list(d.iterdir())
    j = json.loads((first / "journal.json").read_text())
    assert j["status"] == "error" and j["error"] == "KeyError: 'planted'"
    assert any(a["kind"] == "error" and "KeyError" in a["traceback"] for a in j["activities"])
    assert "SCENARIO ERROR: KeyError: 'planted'" in out
    assert json.loads((second / "journal.json").read_text())["status"] == "passed", out
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert junit.count("<error ") == 1 and 'errors="1"' in junit
