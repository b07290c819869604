"""Scenario files: the shipped ones load; a malformed one gives one error naming file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultline.controller.cli import main as cli
from faultline.controller.model import scenario
from faultline.controller.model.schema import SchemaError

SCENARIOS = sorted(p for p in (Path(__file__).resolve().parents[2] / "contracts" / "scenarios").rglob("*.yaml")
                   if p.name != "workload.yaml")

GOOD = """\
title: t
lab: [trader, gateway]
probes:
  - name: up
    tcp: {host: "{gateway}", port: 4002}
  - name: counts
    command: [cat, "{run_dir}/c.json"]
    counters: true
steady_state: [up]
method:
  - partition: {a: [trader], b: [gateway], duration_s: 3}
    at_s: 1
  - fault: {hosts: [trader], kind: loss, loss_percent: 20, peer_hosts: [gateway], duration_s: 2}
  - wait: 2
recovery:
  probe: up
data_loss: counts
"""


def load(tmp_path: Path, text: str) -> scenario.Scenario:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    return scenario.load(f)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_load(path):
    s = scenario.load(path)
    assert s.method and s.title


def test_schedule_and_defaults(tmp_path):
    s = load(tmp_path, GOOD)
    assert [(a, b, st.kind) for a, b, st in s.schedule()] == [(1, 4, "partition"), (4, 6, "fault"), (6, 8, "wait")]
    assert s.targets.rto_s == 30 and s.targets.max_data_loss_ratio == 0.05  # from resilience_config.yaml
    assert s.fault_type == "COMBINED"
    assert s.method[0].hosts == ["trader", "gateway"]


MALFORMED = [
    ("duration_s: 3}", "duration_s: fast}", 11, "method[0].partition.duration_s", "a number from 0.001"),
    ("duration_s: 3}", "duration_s: 3, durashun_s: 1}", 11, "method[0].partition.durashun_s", "not a known key"),
    ("a: [trader]", "a: [tradr]", 11, "method[0].partition.a[0]", "one of gateway, trader"),
    ('"{gateway}"', '"{gatway}"', 5, "probes[0].tcp.host", "placeholders among"),
    ("steady_state: [up]", "steady_state: [down]", 9, "steady_state[0]", "one of counts, up"),
    ("    at_s: 1", "    at_s: -1", 12, "method[0].at_s", "a number from 0"),
    ("loss_percent: 20", "loss_percent: 120", 13, "method[1].fault.loss_percent", "from 0.0001 to 100"),
    ("  - wait: 2\n", "  - wait: 2\n    fault: {}\n", 14, "method[2]", "exactly one of fault, partition, wait"),
    ("    counters: true\n", "", 16, "data_loss", "a probe with counters: true"),
    ("recovery:\n  probe: up\n", "", 1, "recovery", "watch (host, port) and/or probe"),
    ("title: t\n", "", 1, "title", "required"),
    ("lab: [trader, gateway]\n", "lab: [trader, gateway]\nhosts: {x: {agent: 'a:1', ipv4: 1.2.3.4}}\n", 2,
     "lab", "exactly one of lab"),
    ("  - wait: 2\n", "  - wait: [2\n", 15, "", "valid YAML"),
    ("recovery:", "targets: {counters: {rate_limited: {least: 1}}}\nrecovery:", 15,
     "targets.counters.rate_limited.least", "not a known key"),
    ("recovery:", "targets: {counters: {rate_limited: {}}}\nrecovery:", 15, "targets.counters.rate_limited",
     "min and/or max"),
]


@pytest.mark.parametrize("old,new,line,field,allowed", MALFORMED)
def test_malformed_file_names_line_field_and_allowed(tmp_path, old, new, line, field, allowed):
    assert old in GOOD
    with pytest.raises(SchemaError) as e:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert (e.value.line, e.value.path) == (line, field), str(e.value)
    assert allowed in e.value.allowed, str(e.value)
    assert str(e.value).startswith(f"{tmp_path / 's.yaml'}:{line}: ")


def test_cli_refuses_a_malformed_file_with_one_line_before_running_anything(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("duration_s: 3}", "duration_s: fast}"))
    out = tmp_path / "out"
    rc = cli.main(["run", str(good), str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [f"faultline run: error: {bad}:11: method[0].partition.duration_s: a number from 0.001 to "
                   "86400; got 'fast'"]
    assert not out.exists()  # the good file before it did not run either


def test_include_shares_a_workload_and_the_scenario_wins(tmp_path):
    (tmp_path / "w.yaml").write_text(GOOD.split("method:")[0] + "recovery:\n  probe: up\ndata_loss: counts\n")
    f = tmp_path / "s.yaml"
    f.write_text("include: w.yaml\ntitle: mine\nmethod:\n  - fault: {hosts: [gateway], kind: reset, ports: [4002], "
                 "duration_s: 0.2}\nrecovery:\n  watch: {host: trader, port: 4002}\n")
    s = scenario.load(f)
    assert s.title == "mine" and s.probes.keys() == {"up", "counts"}
    assert (s.recovery.watch_host, s.recovery.probe) == ("trader", "")  # the scenario's recovery, not w.yaml's
    assert s.fault_type == "CONNECTION_RESET"
    f.write_text("include: w.yaml\ntitle: mine\nmethod:\n  - fault: {hosts: [gateway], kind: process, "
                 "action: pause, target: {name: x}, duration_s: 1}\n")
    assert scenario.load(f).fault_type == "PROCESS_PAUSE"
    f.write_text("include: w.yaml\ntitle: mine\nmethod:\n  - fault: {hosts: [gateway], kind: process, "
                 "action: pause, target: {name: x}, duration_s: 1, ports: [7]}\n")
    with pytest.raises(SchemaError) as e:  # a key the step's kind does not have (its dataclass's fields)
        scenario.load(f)
    assert (e.value.file, e.value.line, e.value.path) == (str(f), 4, "method[0].fault.ports")
    assert e.value.allowed == "a key of a process fault: action, hosts, restart, target"
    f.write_text("include: w.yaml\ntitle: mine\nmethod:\n  - fault: {hosts: [gateway], kind: process, "
                 "action: pause, duration_s: 1}\n")
    with pytest.raises(SchemaError) as e:
        scenario.load(f)
    assert e.value.file == str(f) and "a target with one of pid" in e.value.allowed
    (tmp_path / "w.yaml").write_text("probes: 3\n")
    with pytest.raises(SchemaError) as e:
        scenario.load(f)
    assert (e.value.file, e.value.line, e.value.path) == (str(tmp_path / "w.yaml"), 1, "probes")


def test_a_cross_field_error_inside_an_included_file_names_that_file_and_line(tmp_path):
    """Issue 20 must-show 5: not `s.yaml:1` but the included file's own line."""
    workload = GOOD.split("method:")[0].replace("    counters: true\n", "")  # counts: no longer a counter probe
    (tmp_path / "w.yaml").write_text(workload + "recovery:\n  probe: up\ndata_loss: counts\n")
    f = tmp_path / "s.yaml"
    f.write_text("include: w.yaml\ntitle: mine\nmethod:\n  - wait: 1\n  - fault: {hosts: [gateway], kind: reset, "
                 "ports: [4002], duration_s: 0.2}\n")
    with pytest.raises(SchemaError) as e:
        scenario.load(f)
    want = (tmp_path / "w.yaml").read_text().splitlines().index("data_loss: counts") + 1
    assert (e.value.file, e.value.line, e.value.path) == (str(tmp_path / "w.yaml"), want, "data_loss"), str(e.value)
    # An error in the including file's own part still names it, at its own line.
    f.write_text("include: w.yaml\ntitle: mine\nmethod:\n  - wait: 1\n")
    with pytest.raises(SchemaError) as e:
        scenario.load(f)
    assert (e.value.file, e.value.line, e.value.path) == (str(f), 3, "method"), str(e.value)


@pytest.mark.parametrize("old,new", [("controller.seqload", "faultline.examples.workloads.seqload"),
                                     ("examples.trading.gateway", "faultline.examples.trading.tws.gateway"),
                                     ("faultline.examples.trading.trader", "faultline.examples.trading.tws.trader")])
def test_a_module_under_its_old_name_is_a_one_line_error_naming_the_new(tmp_path, old, new):
    with pytest.raises(SchemaError) as e:
        load(tmp_path, GOOD.replace('command: [cat, "{run_dir}/c.json"]', f"command: [python3, -m, {old}]"))
    assert e.value.path == "probes[1].command[2]" and f"{old} is now {new}" in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_counter_targets_and_the_fault_window_placeholders(tmp_path):
    s = load(tmp_path, GOOD.replace("recovery:", "targets: {counters: {rate_limited: {min: 1}, lag_ms: {max: 100}}}\n"
                                    "recovery:").replace('"{run_dir}/c.json"', '"{run_dir}/c.json", "{inject_ns}"'))
    assert s.targets.counters == {"rate_limited": (1, None), "lag_ms": (None, 100)}
    assert s.probes["counts"].params["argv"][-1] == "{inject_ns}"


REAL = """\
title: own hosts
hosts:
  app1: {agent: 10.1.0.5, ipv4: 10.2.0.5, interface: eth1, tags: [app], ssh: qa@10.1.0.5}
  db1: {agent: "10.1.0.6:7171", ipv4: 10.2.0.6}
processes:
  - {name: client, host: app1, command: [psql-load]}
  - {name: local, host: controller, command: ["true"]}
probes:
  - {name: db-port, tcp: {host: "{db1}", port: 5432}, from: app1}
  - {name: db-up, command: [pg_isready], from: app1}
  - {name: here, tcp: {host: "{db1}", port: 5432}}
method:
  - partition: {a: [app1], b: [db1], duration_s: 3}
recovery: {probe: db-port}
"""


def test_real_hosts_processes_over_ssh_probes_from_a_host_and_port_7070(tmp_path):
    s = load(tmp_path, REAL)
    assert s.hosts["app1"].agent == "10.1.0.5:7070" and s.hosts["db1"].agent == "10.1.0.6:7171"
    assert s.hosts["app1"].ssh == "qa@10.1.0.5" and s.hosts["app1"].tags == ("app",)
    assert [(p.name, p.host) for p in s.processes] == [("client", "app1"), ("local", "")]
    assert s.probes["db-port"].params["from"] == "app1" and s.probes["db-up"].params["from"] == "app1"
    assert "from" not in s.probes["here"].params


@pytest.mark.parametrize("old, new, field, allowed", [
    ('  - {name: local, host: controller, command: ["true"]}', '  - {name: local, command: ["true"]}',
     "processes[1]", "host: a host with ssh, or controller written out"),
    ("  - {name: client, host: app1,", "  - {name: client, host: db1,", "processes[0].host",
     "a host with ssh (hosts.db1.ssh: user@address), or controller"),
    ("from: app1}\n  - {name: db-up", "from: db1}\n  - {name: db-up", "probes[0].from", "a host with ssh"),
    ('agent: "10.1.0.6:7171"', 'agent: "10.1.0.6:99999"', "hosts.db1.agent", "HOST, HOST:PORT or [IPv6]:PORT"),
    ("ssh: qa@10.1.0.5", "ssh: -oProxyCommand=x", "hosts.app1.ssh", "[user@]host for ssh"),
])
def test_real_host_mistakes_name_the_field(tmp_path, old, new, field, allowed):
    assert old in REAL
    with pytest.raises(SchemaError) as e:
        load(tmp_path, REAL.replace(old, new))
    assert e.value.path == field and allowed in e.value.allowed, str(e.value)
