"""Scenario files (contracts/scenarios/*.yaml): what to break, where, when, and what must hold.

In the spirit of Chaos Toolkit: a steady state checked before and after, a method (faults,
partitions, waits at offsets from the start), rollbacks that always run, and targets. The
whole file is checked before anything runs; an error names file, line, field and what is
allowed. Strings may hold placeholders resolved at run time: {HOST} (its IPv4 address),
{HOST.ipv6}, {python} (this interpreter), {run_dir} (where the run writes its files).

Over 300 lines: the file's schema and its cross-field rules are one read of the file (the
steps' dataclasses are in steps.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from faultline.controller.agents.spec import DIRECTIONS, KINDS, MECHANISMS, PROTOCOLS
from faultline.controller.model import config as resilience
from faultline.controller.model import hosts_file
from faultline.controller.model.hosts_file import HostSpec, HostsSpec
from faultline.controller.model.schema import (
    Bool,
    List,
    Map,
    Num,
    SchemaError,
    Spec,
    Str,
    Template,
    Variant,
    check_text,
    line_of,
)
from faultline.controller.model.steps import Partition, ProcessFault, Step, Wait, fault_of, keys_of

DAY_S = 86_400.0
CONTROLLER = "controller"  # where a process or probe runs when it names no host
SECONDS = Num(0.001, DAY_S)


class FaultType(StrEnum):
    """What a report calls the fault (the chaos suite's names)."""

    NETWORK_DISCONNECT = "NETWORK_DISCONNECT"
    NETWORK_PARTITION = "NETWORK_PARTITION"
    NETWORK_LATENCY = "NETWORK_LATENCY"
    PACKET_LOSS = "PACKET_LOSS"
    PACKET_DUPLICATION = "PACKET_DUPLICATION"
    PACKET_CORRUPTION = "PACKET_CORRUPTION"
    PACKET_REORDERING = "PACKET_REORDERING"
    BANDWIDTH_LIMIT = "BANDWIDTH_LIMIT"
    CONNECTION_RESET = "CONNECTION_RESET"
    PROCESS_KILL = "PROCESS_KILL"
    PROCESS_PAUSE = "PROCESS_PAUSE"
    COMBINED = "COMBINED"


# The fault type the report names, from the method's fault kinds.
FAULT_TYPES = {
    "partition": FaultType.NETWORK_PARTITION, "disconnect": FaultType.NETWORK_DISCONNECT,
    "loss": FaultType.PACKET_LOSS, "delay": FaultType.NETWORK_LATENCY, "duplicate": FaultType.PACKET_DUPLICATION,
    "corrupt": FaultType.PACKET_CORRUPTION, "reorder": FaultType.PACKET_REORDERING, "rate": FaultType.BANDWIDTH_LIMIT,
    "reset": FaultType.CONNECTION_RESET, "process:kill": FaultType.PROCESS_KILL,
    "process:pause": FaultType.PROCESS_PAUSE, "process:restart-unit": FaultType.PROCESS_KILL,
    "process:stop": FaultType.PROCESS_KILL,
}
PROBE_KINDS = ("tcp", "command", "http", "established")


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str                  # one of PROBE_KINDS
    params: dict[str, Any]     # tcp: host, port; command: argv, host; http: url; established: host, port,
                               # min (connections), stable_for_s (the window: see run/probes.py)
    timeout_s: float = 2.0
    counters: bool = False     # command: stdout is JSON with sent / received for data-loss accounting


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]
    host: str = ""             # a lab host (its namespace), a real host (over its ssh); "" the controller
    ready: str = ""            # probe that must pass before the run goes on


@dataclass(frozen=True)
class Targets:
    rto_s: float
    max_data_loss_ratio: float
    max_detection_s: float | None = None
    # What the RTO is counted from: the inject (default), or the heal for a fault as long as
    # the RTO itself (a 30 s partition cannot be recovered from 30 s after it began).
    rto_from: str = "inject"
    # Bounds on the data_loss probe's counters (name -> (min, max), None: unbounded): what a
    # scenario expects its workload to report, e.g. a rate limit hit, a consumer's backlog.
    counters: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Recovery:
    watch_host: str = ""       # kernel events of this host's connections on watch_port
    watch_port: int = 0
    probe: str = ""            # polled every poll_s
    poll_s: float = 0.1
    timeout_s: float = 0.0     # after the last heal; 0: twice the RTO target


@dataclass(frozen=True)
class Rollback:
    kind: str                  # "heal_all" or "command"
    hosts: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    host: str = ""


@dataclass(frozen=True)
class Scenario:
    path: str
    title: str
    description: str
    fault_type: str
    lab: list[str]             # lab host names, or [] when `hosts` names real agents
    hosts: dict[str, HostSpec]
    targets: Targets
    processes: list[Process]
    probes: dict[str, Probe]
    steady_state: list[str]
    method: list[Step]
    recovery: Recovery
    data_loss: str
    rollbacks: list[Rollback]
    settle_s: float

    @property
    def host_names(self) -> list[str]:
        return self.lab or list(self.hosts)

    def schedule(self) -> list[tuple[float, float, Step]]:
        """(start, end, step) in seconds from the method's start: a step without at_s starts
        when the one before it ends."""
        out, prev_end = [], 0.0
        for step in self.method:
            start = step.at_s if step.at_s is not None else prev_end
            out.append((start, start + step.duration_s, step))
            prev_end = start + step.duration_s
        return out


def _schema(hosts: frozenset[str], probes: frozenset[str]) -> Spec:
    # inject_ns / heal_ns: the fault window (controller clock), 0 until there is one.
    names = hosts | {f"{h}.ipv6" for h in hosts} | {"python", "run_dir", "inject_ns", "heal_ns"}
    tpl = Template(names)
    host = Str(tuple(sorted(hosts)) or ("(declare hosts first)",))
    where = Str(tuple(sorted(hosts | {CONTROLLER})))  # where a process or probe runs
    probe = Str(tuple(sorted(probes)) or ("(declare probes first)",))
    port = Num(1, 65535, integer=True)
    argv = List(tpl, min_len=1)
    fault = Map({
        "hosts": List(host, 1), "kind": Str(tuple(KINDS)), "duration_s": SECONDS,
        "peers": List(tpl), "peer_hosts": List(host), "ports": List(port),
        "direction": Str(tuple(d for d in DIRECTIONS if d)), "protocol": Str(tuple(PROTOCOLS)),
        "mechanism": Str(tuple(MECHANISMS)), "loss_percent": Num(0.0001, 100), "percent": Num(0.0001, 100),
        "delay_ms": Num(0, 60_000), "jitter_ms": Num(0, 60_000), "rate_bps": Num(8, 10**12, integer=True),
        # kind: process
        "action": Str(("pause", "stop", "kill", "restart-unit")),
        "target": Map({"pid": Num(2, 4_194_304, integer=True), "name": Str(), "cmdline": tpl, "cgroup": Str(),
                       "unit": Str()}),
        "restart": Str(),
    }, required=frozenset({"hosts", "kind", "duration_s"}), gone={
        "restart_command": "gone: a request never carries a command line (the agent would run it as root); "
                           "write `restart: NAME`, a process of this scenario (lab) or one of the host "
                           "policy's restart_commands"})
    partition = Map({"a": List(host, 1), "b": List(host, 1), "duration_s": SECONDS},
                    required=frozenset({"a", "b", "duration_s"}))
    return Map({
        "title": Str(), "description": Str(), "fault_type": Str(tuple(t.value for t in FaultType)),
        "lab": List(Str(), 1),
        "hosts": HostsSpec(),
        "targets": Map({"rto_s": Num(0.1, DAY_S), "max_data_loss_ratio": Num(0, 1), "max_detection_s": SECONDS,
                        "rto_from": Str(("inject", "heal")), "counters": _CountersSpec()}),
        "processes": List(Map({"name": Str(), "command": argv, "host": where, "ready": probe},
                              required=frozenset({"name", "command"}))),
        "probes": List(Variant(
            {"tcp": Map({"host": tpl, "port": port}, required=frozenset({"host", "port"})),
             "command": argv,
             "http": Map({"url": tpl}, required=frozenset({"url"})),
             "established": Map({"host": host, "port": port, "min": Num(1, 10_000, integer=True),
                                 "stable_for_s": Num(0, 3600)}, required=frozenset({"host", "port"}))},
            {"name": Str(), "timeout_s": Num(0.01, 600), "counters": Bool(), "host": where, "from": where})),
        "steady_state": List(probe),
        "method": List(Variant(
            {"fault": fault, "partition": partition, "wait": SECONDS}, {"at_s": Num(0, DAY_S)}), min_len=1),
        "recovery": Map({"watch": Map({"host": host, "port": port}, required=frozenset({"host", "port"})),
                         "probe": probe, "poll_s": Num(0.01, 60), "timeout_s": SECONDS}),
        "data_loss": probe,
        "rollbacks": List(Variant({"heal_all": List(host, 1), "command": argv}, {"host": host})),
        "settle_s": Num(0, 600),
        "include": Str(),
    }, required=frozenset({"title", "method"}))


class _CountersSpec(Spec):
    """counters: NAME: {min: N, max: N} (at least one of them)."""

    def check(self, node: Any, path: str, file: str) -> Any:
        bound = Num(-1e18, 1e18)
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise self.fail(node, path, file, "a mapping of counter name to {min, max}")
        out = {}
        for k, v in node.value:
            b = Map({"min": bound, "max": bound}).check(v, f"{path}.{k.value}", file)
            if not b:
                raise self.fail(v, f"{path}.{k.value}", file, "min and/or max")
            out[k.value] = (b.get("min"), b.get("max"))
        return out


def _names(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Host and probe names, read loosely first so the full check can validate references to them."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return frozenset(), frozenset()  # the full check reports the syntax error
    if not isinstance(raw, dict):
        return frozenset(), frozenset()
    hosts = raw.get("lab") if isinstance(raw.get("lab"), list) else \
        list(raw["hosts"]) if isinstance(raw.get("hosts"), dict) else []
    listed = raw.get("probes") if isinstance(raw.get("probes"), list) else []
    probes = [p.get("name") for p in listed if isinstance(p, dict)]
    return (frozenset(h for h in hosts if isinstance(h, str)),
            frozenset(p for p in probes if isinstance(p, str)))


def _with_include(path: Path) -> tuple[str, Path | None, int]:
    """The file's text, after the text of the file its `include:` names (shared workload blocks:
    lab, processes, probes...); a key the scenario sets again wins. Returns (text, included, its lines)."""
    text = path.read_text()
    m = re.search(r"^include:[ \t]*(\S+)[ \t]*$", text, re.M)
    if not m:
        return text, None, 0
    inc = path.parent / m.group(1)
    if not inc.is_file():
        line = text[: m.start()].count("\n") + 1
        raise SchemaError(str(path), line, "include", "a file next to this one", m.group(1))
    try:
        own = yaml.safe_load(text)
    except yaml.YAMLError:
        own = None  # the full check reports it
    own_keys = set(own) if isinstance(own, dict) else set()
    # Blank out (keeping line numbers) the included file's top-level keys this file sets again.
    lines, dropping = [], False
    for line in inc.read_text().rstrip("\n").split("\n"):
        top = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", line)
        if top:
            dropping = top.group(1) in own_keys
        lines.append("#" if dropping else line)
    inc_text = "\n".join(lines) + "\n"
    return inc_text + text, inc, inc_text.count("\n")


# Modules a scenario's commands ran before everything moved under the one import name `faultline`.
_RENAMED = {"controller.seqload": "faultline.examples.workloads.seqload",
            "controller.workload": "faultline.examples.workloads.echo", "controller.cli": "faultline",
            "controller.nsexec": "faultline.controller.env.nsexec",
            # The JSON-lines gateway and its trader gave way to the TWS API ones (IB's protocol).
            **{f"{pre}examples.trading.{m}": f"faultline.examples.trading.tws.{m}"
               for pre in ("", "faultline.") for m in ("gateway", "trader")}}


def renamed_module(module: str) -> str | None:
    """The new name of a module that moved (None if it did not)."""
    if module in _RENAMED:
        return _RENAMED[module]
    return f"faultline.{module}" if module.split(".")[0] in ("examples", "agent") else None


def load(path: Path, config_path: Path | None = None) -> Scenario:
    """The scenario, checked in full. Targets default to the resilience config's."""
    text, included, inc_lines = _with_include(path)
    file = str(path)
    try:
        raw = check_text(text, _schema(*_names(text)), file)
    except SchemaError as e:  # name the file the mistake is in
        if included is not None:
            e = SchemaError(str(included), e.line, e.path, e.allowed, e.got) if e.line <= inc_lines else \
                SchemaError(file, e.line - inc_lines, e.path, e.allowed, e.got)
        raise e from None
    cfg = resilience.load(config_path) if config_path else resilience.load()

    def fail(where: str, allowed: str, got: object) -> SchemaError:
        line = line_of(text, where)  # in the included file's text, then this file's
        if not line:
            return SchemaError(file, 1, where, allowed, got)
        if included is not None and line <= inc_lines:
            return SchemaError(str(included), line, where, allowed, got)
        return SchemaError(file, line - inc_lines, where, allowed, got)

    def check_argv(where: str, argv: list[str]) -> None:
        for j, arg in enumerate(argv[:-1]):
            if arg == "-m" and (new := renamed_module(argv[j + 1])):
                raise fail(f"{where}[{j + 1}]", f"a module that exists: {argv[j + 1]} is now {new}", argv[j + 1])

    if ("lab" in raw) == ("hosts" in raw):
        raise fail("lab", "exactly one of lab (lab host names) or hosts (real agents)", sorted(raw))
    for i, name in enumerate(raw.get("lab", [])):
        if not name.isalnum() or not name[0].isalpha() or name != name.lower() or len(name) > 10:
            raise fail(f"lab[{i}]", "1-10 lowercase letters/digits, starting with a letter", name)
    if len(set(raw.get("lab", []))) != len(raw.get("lab", [])):
        raise fail("lab", "distinct host names", raw["lab"])
    probes: dict[str, Probe] = {}
    for i, p in enumerate(raw.get("probes", [])):
        kind = next(k for k in PROBE_KINDS if k in p)
        if p["name"] in probes:
            raise fail(f"probes[{i}].name", "a name no other probe has", p["name"])
        if p.get("counters") and kind != "command":
            raise fail(f"probes[{i}].counters", "only on a command probe (its stdout is the JSON)", True)
        if "host" in p and "from" in p:
            raise fail(f"probes[{i}].host", "host or from, not both (the same: where it runs)", p["host"])
        runs_on = p.get("from", p.get("host", ""))
        if runs_on and kind not in ("command", "tcp"):
            raise fail(f"probes[{i}].from", "only on a tcp or command probe (the host it is taken on)", runs_on)
        if runs_on and runs_on != CONTROLLER and "lab" not in raw and not raw["hosts"][runs_on].get("ssh"):
            raise fail(f"probes[{i}].from", f"a host with ssh (hosts.{runs_on}.ssh: user@address), or "
                                            f"{CONTROLLER}", runs_on)
        if kind == "command":
            check_argv(f"probes[{i}].command", p[kind])
        params = {"argv": p[kind]} if kind == "command" else dict(p[kind])
        if runs_on and runs_on != CONTROLLER:
            params["from"] = runs_on
        probes[p["name"]] = Probe(p["name"], kind, params, p.get("timeout_s", 2.0), p.get("counters", False))
    steps = []
    for i, s in enumerate(raw["method"]):
        kind = next(k for k in ("fault", "partition", "wait") if k in s)
        body = s[kind]
        if kind == "wait":
            steps.append(Step(i, s.get("at_s"), body, Wait()))
            continue
        if kind == "partition" and set(body["a"]) & set(body["b"]):
            raise fail(f"method[{i}].partition.b", "hosts not also in a", sorted(set(body["a"]) & set(body["b"])))
        if kind == "fault" and body["kind"] == "process":
            if "action" not in body or len(body.get("target", {})) != 1:
                raise fail(f"method[{i}].fault", "action and a target with one of pid, name, cmdline, cgroup, unit "
                                                 "for a process fault", sorted(body.get("target", {})) or None)
        elif body.get("action") or body.get("target") or body.get("restart"):
            raise fail(f"method[{i}].fault", "action, target and restart only for kind process", body["kind"])
        if kind == "fault" and (extra := sorted(set(body) - {"kind", "duration_s"} - keys_of(body["kind"]))):
            raise fail(f"method[{i}].fault.{extra[0]}",
                       f"a key of a {body['kind']} fault: {', '.join(sorted(keys_of(body['kind'])))}", extra[0])
        if kind == "fault" and body["kind"] == "reset" and not (body.get("peers") or body.get("peer_hosts")
                                                                 or body.get("ports")):
            raise fail(f"method[{i}].fault", "peers, peer_hosts or ports: which connections to reset", None)
        if kind == "fault" and not (body.get("peers") or body.get("peer_hosts")) \
                and body["kind"] not in ("rate", "process", "reset"):
            raise fail(f"method[{i}].fault", "peers or peer_hosts: whom the fault cuts the hosts from "
                                             "(a fault on all traffic could cut off the agent itself)", None)
        if kind == "fault" and body["kind"] == "loss" and "loss_percent" not in body:
            raise fail(f"method[{i}].fault.loss_percent", "required for a loss fault", None)
        params = {k: v for k, v in body.items() if k != "duration_s"}
        steps.append(Step(i, s.get("at_s"), body["duration_s"],
                          Partition(**params) if kind == "partition" else fault_of(params)))
    if not any(s.kind != "wait" for s in steps):
        raise fail("method", "at least one fault or partition step", "waits only")
    processes = []
    for i, p in enumerate(raw.get("processes", [])):
        if "lab" not in raw and "host" not in p:
            raise fail(f"processes[{i}]", f"host: a host with ssh, or {CONTROLLER} written out (where it runs: "
                                          "real hosts are not the controller)", p["name"])
        runs_on = p.get("host", CONTROLLER)
        if runs_on != CONTROLLER and "lab" not in raw and not raw["hosts"][runs_on].get("ssh"):
            raise fail(f"processes[{i}].host", f"a host with ssh (hosts.{runs_on}.ssh: user@address), or "
                                               f"{CONTROLLER}", runs_on)
        check_argv(f"processes[{i}].command", p["command"])
        processes.append(Process(p["name"], p["command"], "" if runs_on == CONTROLLER else runs_on,
                                 p.get("ready", "")))
    if "lab" in raw:  # a lab host's policy lists its processes' commands as its restart commands
        for step in steps:
            name = step.action.restart if isinstance(step.action, ProcessFault) else None
            for h in step.hosts if name else []:
                if not any(p.name == name and p.host == h for p in processes):
                    on_host = sorted(p.name for p in processes if p.host == h) or ["none"]
                    raise fail(f"method[{step.index}].fault.restart",
                               f"a process of this scenario on host {h} ({', '.join(on_host)})", name)
    rec = raw.get("recovery", {})
    if not rec.get("watch") and not rec.get("probe"):
        raise fail("recovery", "watch (host, port) and/or probe: how recovery is seen", rec or None)
    recovery = Recovery(rec.get("watch", {}).get("host", ""), rec.get("watch", {}).get("port", 0),
                        rec.get("probe", ""), rec.get("poll_s", 0.1), rec.get("timeout_s", 0.0))
    data_loss = raw.get("data_loss", "")
    if data_loss and not probes[data_loss].counters:
        raise fail("data_loss", "a probe with counters: true", data_loss)
    for i, r in enumerate(raw.get("rollbacks", [])):
        if "command" in r:
            check_argv(f"rollbacks[{i}].command", r["command"])
    rollbacks = [Rollback("heal_all", hosts=r["heal_all"]) if "heal_all" in r
                 else Rollback("command", argv=r["command"], host=r.get("host", "")) for r in raw.get("rollbacks", [])]
    t = raw.get("targets", {})
    targets = Targets(t.get("rto_s", cfg.rto_target_s), t.get("max_data_loss_ratio", cfg.max_data_loss_ratio),
                      t.get("max_detection_s"), t.get("rto_from", "inject"), t.get("counters", {}))
    kinds = {s.fault_kind for s in steps if s.kind != "wait"}
    fault_type = raw.get("fault_type") or (FAULT_TYPES[kinds.pop()] if len(kinds) == 1 else FaultType.COMBINED).value
    hosts = hosts_file.specs(raw.get("hosts", {}))
    return Scenario(file, raw["title"], raw.get("description", ""), fault_type, raw.get("lab", []), hosts, targets,
                    processes, probes, raw.get("steady_state", []), steps, recovery, data_loss, rollbacks,
                    raw.get("settle_s", 1.0))
