"""faultline: inject kernel-level network faults on trading hosts and watch them heal."""

# Over 300 lines: about half is the parser; building it from one small function per command,
# with the defaults in one place, is not done yet. (Not in the docstring: it is --help's text.)

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from faultline.controller.agents import format as fmt
from faultline.controller.agents.client import (
    EVENT_KINDS,
    TARGET_BY,
    AgentClient,
    AgentError,
    fault_spec,
    process_spec,
    watch_filter,
)

EPILOG = """\
examples:
  faultline lab up --hosts trader,gateway,broker
  faultline caps   --agent trader
  faultline inject --agent 10.77.0.1:7070 disconnect --peer 10.77.0.2/32 --direction both --duration 10s
  faultline inject --agent trader loss --percent 20 --peer 10.77.0.3/32 --port 4002 --duration 1m
  faultline inject --agent trader delay --delay 100ms --jitter 10ms --distribution normal --peer 10.77.0.2/32
  faultline inject --agent trader loss --gemodel 5,30,90,1 --mechanism netem --peer 10.77.0.3/32
  faultline inject --agent trader rate --rate 1mbit --peer 10.77.0.2/32 --port 4002
  faultline list   --agent trader
  faultline watch  --agent trader --port 4002
  faultline flows  --agent trader --port 4002
  faultline heal   --agent trader --all
  faultline lab down

--agent takes HOST:PORT, or the name of a lab host. Every fault has a lease
(--duration): the agent heals it by itself when it runs out, even if this
controller is gone. Agent errors print as one line and exit 1.

disconnect and loss use the eBPF classifier by default; delay, duplicate, corrupt,
reorder and rate need netem (check `faultline caps`), which shapes egress only.
"""

DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """'500ms', '10s', '2m', '1h' or plain seconds -> seconds."""
    m = DURATION_RE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration like 500ms, 10s, 2m or 1h")
    return float(m.group(1)) * UNITS[m.group(2)]


RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps)?$", re.IGNORECASE)
RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "bps": 8, None: 1}


def rate(text: str) -> int:
    """'1mbit', '500kbit', '10gbit', '125000bps' (bytes/s) or plain bits/s -> bits/s."""
    m = RATE_RE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: a rate like 500kbit, 1mbit, 10gbit or 125000bps (bytes/s)")
    return round(float(m.group(1)) * RATE_UNITS[(m.group(2) or "").lower() or None])


def gemodel(text: str) -> tuple[float, float, float, float]:
    """'P,R[,1-H[,1-K]]' in percent, as tc writes gemodel; 1-H defaults to 100, 1-K to 0."""
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if not 2 <= len(parts) <= 4:
        raise argparse.ArgumentTypeError(f"{text!r}: P,R[,1-H[,1-K]] in percent, e.g. 5,30,90,1")
    return (*parts, *(100.0, 0.0)[len(parts) - 2:])  # type: ignore[return-value]


def port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a port number") from None


def resolve_agent(name: str) -> str:
    if ":" in name:
        return name
    from faultline.controller.env.lab import Lab

    state = Lab().load()
    if state is None or name not in state.hosts:
        raise SystemExit(f"faultline: error: --agent {name!r} is neither HOST:PORT nor a host of the lab "
                         "(faultline lab status)")
    return state.hosts[name].agent


def _agent_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", default=os.environ.get("FAULTLINE_AGENT"),
                   required="FAULTLINE_AGENT" not in os.environ,
                   help="HOST:PORT of the agent, or a lab host name (env FAULTLINE_AGENT)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=duration, default=10.0, help="deadline of each call (default 10s)")


def _selector_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", default="", help="interface on the agent's host (default: the one routing to --peer)")
    p.add_argument("--peer", action="append", default=[], metavar="CIDR",
                   help="remote address(es) to fault, IPv4 or IPv6 (repeatable; default: all)")
    p.add_argument("--port", action="append", type=port, default=[], metavar="PORT",
                   help="source or destination port (repeatable; default: all)")
    p.add_argument("--direction", choices=("egress", "ingress", "both"), default="",
                   help="default: both for disconnect/loss, egress for the netem-only kinds")
    p.add_argument("--protocol", choices=("any", "tcp", "udp", "icmp"), default="any")
    p.add_argument("--duration", type=duration, default=30.0,
                   help="lease: the agent heals the fault after this long (default 30s)")
    p.add_argument("--mechanism", choices=("auto", "ebpf", "netem"), default="auto",
                   help="auto: eBPF for disconnect/loss when it can, netem otherwise")
    p.add_argument("--label", default="", help="free text shown in listings")
    p.add_argument("--queue-limit", type=int, default=0, metavar="PACKETS",
                   help="netem queue limit (default: sized by the agent from rate x delay)")


def _correlation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--correlation", type=float, default=0.0, metavar="PERCENT",
                   help="0-100: how much each random draw depends on the previous one (netem)")


def _watch_filter_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peer", action="append", default=[], metavar="CIDR",
                   help="remote address(es) (repeatable; default: all)")
    p.add_argument("--port", action="append", type=port, default=[], metavar="PORT",
                   help="local or remote port (repeatable; default: all)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="faultline", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("caps", help="what the agent's kernel can do, and why not otherwise")
    _agent_opts(p)
    p = sub.add_parser("health", help="is the agent serving; its clock's offset from this host (NTP-style)")
    _agent_opts(p)

    p = sub.add_parser("inject", help="apply a fault", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _agent_opts(p)
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    k = kinds.add_parser("disconnect", help="drop every matching packet")
    _selector_opts(k)
    k = kinds.add_parser("loss", help="drop each matching packet with a probability, or in bursts (netem)")
    g = k.add_mutually_exclusive_group(required=True)
    g.add_argument("--percent", type=float, help="0 < percent <= 100")
    g.add_argument("--gemodel", type=gemodel, metavar="P,R[,1-H[,1-K]]",
                   help="Gilbert-Elliott burst loss in percent, as tc: good->bad, bad->good, loss in bad, in good")
    _correlation(k)
    _selector_opts(k)
    k = kinds.add_parser("delay", help="delay matching packets (netem)")
    k.add_argument("--delay", type=duration, required=True, help="e.g. 100ms, 2s (at most 60s)")
    k.add_argument("--jitter", type=duration, default=0.0, help="spread around --delay (default 0)")
    k.add_argument("--distribution", choices=("uniform", "normal", "pareto", "paretonormal"), default="uniform",
                   help="of the jitter: uniform in +-jitter (netem's default), normal with stdev = jitter, ...")
    k.add_argument("--preserve-order", action="store_true",
                   help="with jitter, keep packets in order (netem reorders them otherwise)")
    _correlation(k)
    _selector_opts(k)
    for name, what in (("duplicate", "send matching packets twice"), ("corrupt", "flip a bit in matching packets")):
        k = kinds.add_parser(name, help=f"{what}, with a probability (netem)")
        k.add_argument("--percent", type=float, required=True, help="0 < percent <= 100")
        _correlation(k)
        _selector_opts(k)
    k = kinds.add_parser("reorder", help="send some packets at once, ahead of the delayed rest (netem)")
    k.add_argument("--percent", type=float, required=True, help="0 < percent <= 100 of packets sent early")
    k.add_argument("--delay", type=duration, required=True, help="the delay the other packets get")
    k.add_argument("--gap", type=int, default=0, help="reorder every GAP-th packet instead of at random")
    _correlation(k)
    _selector_opts(k)
    k = kinds.add_parser("rate", help="limit matching traffic's bandwidth (netem)")
    k.add_argument("--rate", type=rate, required=True, help="e.g. 500kbit, 1mbit, 10gbit")
    k.add_argument("--overhead", type=int, default=0, help="bytes added to each packet when pacing (-128..128)")
    _selector_opts(k)
    k = kinds.add_parser(
        "reset", help="reset established TCP connections now (peer gets a RST), as `ss -K` does",
        description="Destroy this host's established TCP connections to --peer and/or on --port "
                    "(one of them required; the agent's own port and SSH are never touched). The peer "
                    "sees 'connection reset by peer'. Done once; the fault is listed until --duration ends.")
    k.add_argument("--peer", action="append", default=[], metavar="CIDR", help="remote address(es) (repeatable)")
    k.add_argument("--port", action="append", type=port, default=[], metavar="PORT",
                   help="local or remote port (repeatable)")
    k.add_argument("--duration", type=duration, default=5.0, help="how long the fault is listed (default 5s)")
    k.add_argument("--label", default="", help="free text shown in listings")
    k = kinds.add_parser(
        "process", help="pause, stop, kill or restart processes of the agent's host",
        description="pause: SIGSTOP now, SIGCONT when --duration ends (also after an agent crash: the "
                    "next start resumes it). kill: SIGKILL now; the --restart named runs when --duration ends. "
                    "stop: SIGTERM now (a graceful shutdown), --restart as for kill. "
                    "restart-unit: systemctl restart of one of the policy's units (hosts running systemd). "
                    "Only processes in the agent's network namespace, at most the policy's max_processes; "
                    "never PID 1 or the agent. Needs allow_process_faults in the host's policy, which also "
                    "names the restart commands (no command line is ever sent).")
    k.add_argument("action", choices=("pause", "stop", "kill", "restart-unit"))
    g = k.add_mutually_exclusive_group(required=True)
    g.add_argument("--pid", type=int)
    g.add_argument("--name", help="exact process name (comm), as pgrep -x")
    g.add_argument("--cmdline", help="text in the command line, as pgrep -f")
    g.add_argument("--cgroup", help="cgroup v2 path under /sys/fs/cgroup")
    g.add_argument("--unit", help="systemd unit, e.g. broker.service")
    k.add_argument("--restart", default="", metavar="NAME",
                   help="kill and stop: one of the host policy's restart_commands, run when --duration ends "
                        "(see `faultline caps`: process_faults lists them)")
    k.add_argument("--duration", type=duration, default=30.0,
                   help="pause: how long; kill, stop: until the restart command runs (default 30s)")
    k.add_argument("--label", default="", help="free text shown in listings")

    p = sub.add_parser("heal", help="heal one fault, or all of them")
    _agent_opts(p)
    p.add_argument("fault_id", nargs="?")
    p.add_argument("--all", action="store_true", help="heal every fault on the agent")

    p = sub.add_parser("list", help="active faults with their kernel counters (matched, dropped)")
    _agent_opts(p)
    p.add_argument("--healed", action="store_true", help="also the recently healed ones")

    p = sub.add_parser("renew", help="extend a fault's lease, counted from now")
    _agent_opts(p)
    p.add_argument("fault_id")
    p.add_argument("--duration", type=duration, required=True)

    p = sub.add_parser(
        "watch", help="live TCP events of the agent's host: state changes, retransmits, resets, RTT",
        description="Stream what the agent's kernel probes see on the connections of its own host (those bound "
                    "to its addresses), one line per event, until Ctrl-C or --for runs out. Filters are applied "
                    "in the kernel. Times are UTC with microseconds: kernel timestamps put on the realtime clock "
                    "by the agent. Lost events are reported as LOST lines, never dropped silently.",
        epilog="examples:\n  faultline watch --agent trader --port 4002\n"
               "  faultline watch --agent 10.77.0.1:7070 --peer 10.77.0.2/32 --kind state --kind retransmit\n"
               "  faultline watch --agent trader --kind rtt --rtt-every 1s --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _agent_opts(p)
    _watch_filter_opts(p)
    p.add_argument("--kind", action="append", choices=sorted(EVENT_KINDS), default=[],
                   help="event kinds to stream (repeatable; default: all but rtt, whose probe runs on every "
                        "received segment)")
    p.add_argument("--rtt-every", type=duration, default=0.1, metavar="DURATION",
                   help="at most one RTT sample per connection this often (default 100ms; 0: every segment)")
    p.add_argument("--no-counters", action="store_true", help="do not show the active faults' counters")
    p.add_argument("--for", dest="for_s", type=duration, default=0.0, metavar="DURATION",
                   help="stop after this long (default: until Ctrl-C)")

    p = sub.add_parser("flows", help="per connection: states, retransmits, resets, RTT percentiles (from watches)",
                       description="Summaries of the connections that watch streams on this agent have seen "
                                   "(the agent records only while a watch stream is open).")
    _agent_opts(p)
    _watch_filter_opts(p)
    p.add_argument("--since", type=duration, default=0.0, metavar="DURATION",
                   help="only flows with an event in the last DURATION (default: all remembered)")

    lab = sub.add_parser("lab", help="a lab of hosts as network namespaces, one agent each (root)")
    lsub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = lsub.add_parser("up", help="create the hosts and start their agents (idempotent)")
    up.add_argument("--hosts", default="trader,gateway,broker", help="comma-separated names (default %(default)s)")
    up.add_argument("--ready-timeout", type=float, default=60.0, metavar="S",
                    help="how long each agent may take to compile its BPF programs and serve (default %(default)s; "
                         "--vm uses 300: TCG is slow)")
    up.add_argument("--vm", action="store_true",
                    help="in a VM with Debian's kernel (netem): boot, lab up, run --then, lab down, power off")
    up.add_argument("--then", default="faultline lab status", metavar="COMMAND",
                    help="with --vm: what to run once the lab is up (default: %(default)r)")
    lsub.add_parser("status", help="what the lab made, and whether each agent answers")
    lsub.add_parser("down", help="remove every namespace, link, agent and state dir the lab made (idempotent)")

    sub.add_parser("demo", help="the trading lab under four faults (partition, latency, loss, broker kill) "
                                "with the RECOVERY SCORECARD; lab down after, nothing left")

    certs = sub.add_parser(
        "certs", help="mTLS material: a small CA, an agent and a controller certificate",
        description="Make DIR/ca.pem, ca-key.pem, agent.pem, agent-key.pem, controller.pem, controller-key.pem "
                    "(ECDSA P-256; keys 0600). Agents serve with --tls-dir holding agent*.pem and ca.pem and allow "
                    "the controller's subject (--allow-client CN=...); the controller uses FAULTLINE_TLS_DIR=DIR.",
        epilog="example:\n  faultline certs init /etc/faultline/tls --agent-host 10.1.0.5 --agent-host trader1\n"
               "  FAULTLINE_TLS_DIR=/etc/faultline/tls faultline health --agent 10.1.0.5:7070",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    ci = csub.add_parser("init", help="make a CA and both certificates in DIR (refuses to replace a CA)")
    ci.add_argument("dir", type=Path, metavar="DIR")
    ci.add_argument("--agent-host", action="append", default=[], metavar="NAME_OR_IP",
                    help="an address the agents are reached by (repeatable; the certificate names each)")
    ci.add_argument("--controller-name", default="faultline-controller",
                    help="the controller certificate's CN (default %(default)s)")

    p = sub.add_parser(
        "run", help="run scenario files: faults on several hosts, recovery measured against the RTO",
        description="Check every FILE in full (an error names file, line and field; nothing runs until all are "
                    "valid), then run them one after the other: processes, steady state, the method (faults and "
                    "partitions applied at one instant on every host, on the controller's corrected clock), "
                    "recovery from kernel events and probes, steady state again; rollbacks always run, also on "
                    "failure or Ctrl-C. Prints each scenario's Recovery Metrics and, for several, the RECOVERY "
                    "SCORECARD. Writes journal.json, junit.xml and timeline.html per scenario under --out.",
        epilog="examples:\n  faultline run contracts/scenarios/partition_trader_gateway.yaml\n"
               "  faultline run contracts/scenarios/*.yaml --out build/runs/nightly --keep-lab\n\n"
               "exit status: 0 every assertion held; 1 one failed (RTO VIOLATION, data loss, steady state, "
               "rollbacks); 2 a file is malformed (nothing was run); 130 interrupted (rollbacks ran).\n"
               "The scenario format is in README.md (Scenario files).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="results dir (default build/runs/<time>); one subdir per scenario, junit.xml of all")
    p.add_argument("--config", type=Path, default=None, metavar="PATH",
                   help="resilience config for targets a scenario does not set "
                        "(default contracts/resilience_config.yaml)")
    p.add_argument("--keep-lab", action="store_true", help="leave a lab the run brought up running afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the results")

    vm = sub.add_parser(
        "vm", help="run a command inside a VM with Debian's kernel (netem, kprobes), e.g. the netem tests",
        description="Boot /boot/vmlinuz-*-amd64 with virtme-ng (this filesystem as the VM's root), run COMMAND "
                    "in this checkout with its venv, print its output, exit with its exit code. Files written "
                    "under $FAULTLINE_VM_OUT inside the VM land in --out.",
        epilog="example:  faultline vm -- faultline demo\n          faultline vm --out build/vm -- "
               "python -m pytest tests/vm", formatter_class=argparse.RawDescriptionHelpFormatter)
    vm.add_argument("--out", type=Path, default=Path("build/vm"), help="read-write results dir (default %(default)s)")
    vm.add_argument("--kvm", action="store_true", help="use KVM (default TCG: KVM guests hang on Firecracker hosts)")
    vm.add_argument("--memory", default="2G")
    vm.add_argument("--cpus", type=int, default=2)
    vm.add_argument("--timeout", type=duration, default=900.0, help="give up after this long (default 15m)")
    vm.add_argument("--systemd", action="store_true",
                    help="boot with systemd as PID 1 (units, systemctl; ~2 min to multi-user under TCG)")
    vm.add_argument("vm_command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    return ap


def _run_agent_command(args: argparse.Namespace) -> int:
    with AgentClient(resolve_agent(args.agent), timeout_s=args.timeout) as c:
        def out(msg: Any, human: Callable[[Any], str]) -> None:
            print(fmt.as_json(msg) if args.json else human(msg))

        if args.command == "caps":
            out(c.capabilities(), fmt.capabilities)
        elif args.command == "health":
            from faultline.controller.agents.clocksync import sync

            h = c.health()
            offset = sync(c)
            out(h, lambda h: f"{h.status}: agent {h.agent_version}, {h.active_faults} active fault(s), "
                             f"netns {h.netns or '-'}, clock {fmt.when(h.now)}, offset from this host {offset}")
        elif args.command == "inject" and args.kind == "process":
            target = {by: getattr(args, by) for by in TARGET_BY if getattr(args, by) is not None}
            spec = process_spec(args.action, args.duration, restart=args.restart, label=args.label,
                                **target)
            r = c.apply(spec)
            out(r, lambda r: f"{r.fault_id}: {args.action} {fmt.describe(spec)}; "
                             f"ends at {fmt.when(r.lease_expires_at)}")
        elif args.command == "inject":
            a = vars(args)
            spec = fault_spec(
                args.kind, a.get("interface", ""), peers=args.peer, ports=args.port, direction=args.direction,
                protocol=a.get("protocol", "any"), lease_s=args.duration, mechanism=a.get("mechanism", "auto"),
                label=args.label,
                loss_percent=a.get("percent") if args.kind == "loss" else None,
                percent=a.get("percent") or 0.0, correlation=a.get("correlation", 0.0),
                gilbert_elliott=a.get("gemodel"), delay_ms=a.get("delay", 0.0) * 1000,
                jitter_ms=a.get("jitter", 0.0) * 1000, distribution=a.get("distribution", "uniform"),
                preserve_order=a.get("preserve_order", False), gap=a.get("gap", 0), rate_bps=a.get("rate", 0),
                packet_overhead=a.get("overhead", 0), queue_limit=a.get("queue_limit", 0),
            )
            r = c.apply(spec)
            out(r, lambda r: f"{r.fault_id} applied at {fmt.when(r.applied_at)} "
                             f"(realtime {r.applied_at.realtime_ns} ns) via "
                             f"{fmt.enum_name(fmt.pb.Mechanism, r.mechanism, 'MECHANISM_')}; "
                             f"heals by itself at {fmt.when(r.lease_expires_at)}")
        elif args.command == "heal":
            if bool(args.fault_id) == bool(args.all):
                raise SystemExit("faultline heal: error: give a FAULT_ID or --all, not both or neither")
            faults = c.heal_all() if args.all else [c.heal(args.fault_id)]
            out(faults, fmt.fault_table)
        elif args.command == "list":
            out(c.list(args.healed), fmt.fault_table)
        elif args.command == "renew":
            r = c.renew(args.fault_id, args.duration)
            out(r, lambda r: f"{args.fault_id} now heals at {fmt.when(r.lease_expires_at)}")
        elif args.command == "flows":
            since = time.time_ns() - int(args.since * 1e9) if args.since else 0
            out(c.summarize(watch_filter(ports=args.port, peers=args.peer), since), fmt.flow_table)
        elif args.command == "watch":
            return _watch(c, args)
    return 0


def _watch(c: AgentClient, args: argparse.Namespace) -> int:
    f = watch_filter(args.kind, args.port, args.peer, round(args.rtt_every * 1000), not args.no_counters)
    w = c.watch(f)
    if args.for_s:
        threading.Timer(args.for_s, w.cancel).start()

    def show(item: Any) -> None:
        print(json.dumps(MessageToDict(item, preserving_proto_field_name=True)) if args.json
              else fmt.watch_event(item), flush=True)

    show(fmt.pb.WatchEvent(at=w.watching_at, watching=w.watching))
    try:
        for item in w:
            show(item)
    except KeyboardInterrupt:
        w.cancel()
    return 0


def _run_lab(args: argparse.Namespace) -> int:
    from faultline.controller.env.lab import Lab, agent_alive

    lab = Lab(progress=lambda m: print(m, file=sys.stderr))
    if args.lab_command == "up" and args.vm:
        inner = (f"faultline lab up --ready-timeout 300 --hosts {shlex.quote(args.hosts)} && {args.then}; "
                 "faultline lab down")
        return _run_vm(argparse.Namespace(out=Path("build/vm"), kvm=False, memory="2G", cpus=2, timeout=900.0,
                                          vm_command=["bash", "-c", inner]))
    if args.lab_command == "up":
        state = lab.up([h.strip() for h in args.hosts.split(",") if h.strip()], timeout_s=args.ready_timeout)
        for h in state.hosts.values():
            print(f"{h.name:10} {h.ipv4:15} {h.ipv6:12} agent {h.agent}  netns {h.netns}  if {h.interface}")
    elif args.lab_command == "status":
        state = lab.load()
        if state is None:
            print("no lab is up")
            return 0
        print(f"bridge {state.bridge} ({'made by the lab' if state.bridge_created else 'pre-existing'})")
        for h in state.hosts.values():
            alive = agent_alive(h)
            health = "-"
            if alive:
                try:
                    with AgentClient(h.agent, timeout_s=2) as c:
                        hr = c.health()
                        health = f"{hr.status}, {hr.active_faults} fault(s)"
                except AgentError as e:
                    health = e.code.name
            print(f"{h.name:10} {h.ipv4:15} {h.ipv6:12} netns {h.netns:14} agent pid {h.pid or '-'} "
                  f"{'running' if alive else 'NOT running'} ({health})")
    else:
        for line in lab.down():
            print(line)
    return 0


def _run_vm(args: argparse.Namespace) -> int:
    from faultline.controller.env import vm
    command = args.vm_command[1:] if args.vm_command[:1] == ["--"] else args.vm_command
    if not command:
        raise SystemExit("faultline vm: error: give the command to run after --")
    try:
        rc = vm.run(command, args.out.resolve(), vm.VmConfig(memory=args.memory, cpus=args.cpus, kvm=args.kvm,
                                                             timeout_s=args.timeout, systemd=args.systemd),
                    progress=lambda m: print(m, file=sys.stderr))
    except vm.VmUnavailable as e:
        print(f"faultline vm: error: {e}", file=sys.stderr)
        return vm.EX_UNAVAILABLE
    sys.stdout.write((args.out / "output.log").read_text(errors="replace"))
    return rc


def _run_scenarios(args: argparse.Namespace) -> int:
    from faultline.controller.cli.scenarios import run_scenarios
    from faultline.controller.model import scenario
    from faultline.controller.model.schema import SchemaError

    try:
        scenarios = [scenario.load(f, args.config) for f in args.files]
    except SchemaError as e:
        print(f"faultline run: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"faultline run: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    out = args.out or Path("build/runs") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return run_scenarios(scenarios, out, keep_lab=args.keep_lab, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lab":
            return _run_lab(args)
        if args.command == "vm":
            return _run_vm(args)
        if args.command == "run":
            return _run_scenarios(args)
        if args.command == "certs":
            from faultline.controller.env import certs
            files = certs.init(args.dir, args.agent_host, args.controller_name)
            for name, path in files.items():
                print(f"{path}{'  (secret: keep it on this host)' if name == 'ca-key.pem' else ''}")
            print(f"agents: --tls-dir with agent.pem, agent-key.pem, ca.pem and --allow-client "
                  f"CN={args.controller_name}; controller: FAULTLINE_TLS_DIR={args.dir}")
            return 0
        if args.command == "demo":
            from faultline.controller.cli.demo import run_demo

            return run_demo()
        return _run_agent_command(args)
    except AgentError as e:
        print(f"faultline: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TimeoutError, RuntimeError, PermissionError, FileExistsError, FileNotFoundError) as e:
        print(f"faultline: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
