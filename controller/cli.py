"""faultline: inject kernel-level network faults on trading hosts and watch them heal."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from controller import format as fmt
from controller.client import AgentClient, AgentError, fault_spec

EPILOG = """\
examples:
  faultline lab up --hosts trader,gateway,broker
  faultline caps   --agent trader
  faultline inject --agent 10.77.0.1:7070 disconnect --peer 10.77.0.2/32 --direction both --duration 10s
  faultline inject --agent trader loss --percent 20 --peer 10.77.0.3/32 --port 4002 --duration 1m
  faultline list   --agent trader
  faultline heal   --agent trader --all
  faultline lab down

--agent takes HOST:PORT, or the name of a lab host. Every fault has a lease
(--duration): the agent heals it by itself when it runs out, even if this
controller is gone. Agent errors print as one line and exit 1.
"""

DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """'500ms', '10s', '2m', '1h' or plain seconds -> seconds."""
    m = DURATION_RE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration like 500ms, 10s, 2m or 1h")
    return float(m.group(1)) * UNITS[m.group(2)]


def port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a port number") from None


def resolve_agent(name: str) -> str:
    if ":" in name:
        return name
    from controller.lab import Lab

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
    p.add_argument("--direction", choices=("egress", "ingress", "both"), default="both")
    p.add_argument("--protocol", choices=("any", "tcp", "udp", "icmp"), default="any")
    p.add_argument("--duration", type=duration, default=30.0,
                   help="lease: the agent heals the fault after this long (default 30s)")
    p.add_argument("--mechanism", choices=("auto", "ebpf", "netem"), default="auto")
    p.add_argument("--label", default="", help="free text shown in listings")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="faultline", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("caps", help="what the agent's kernel can do, and why not otherwise")
    _agent_opts(p)
    p = sub.add_parser("health", help="is the agent serving; its clocks")
    _agent_opts(p)

    p = sub.add_parser("inject", help="apply a fault", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _agent_opts(p)
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    k = kinds.add_parser("disconnect", help="drop every matching packet")
    _selector_opts(k)
    k = kinds.add_parser("loss", help="drop each matching packet with a probability")
    k.add_argument("--percent", type=float, required=True, help="0 < percent <= 100")
    _selector_opts(k)

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

    lab = sub.add_parser("lab", help="a lab of hosts as network namespaces, one agent each (root)")
    lsub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = lsub.add_parser("up", help="create the hosts and start their agents (idempotent)")
    up.add_argument("--hosts", default="trader,gateway,broker", help="comma-separated names (default %(default)s)")
    lsub.add_parser("status", help="what the lab made, and whether each agent answers")
    lsub.add_parser("down", help="remove every namespace, link, agent and state dir the lab made (idempotent)")

    sub.add_parser("demo", help="lab up, stream TCP, 3 s disconnect, measure reconnection, lab down")
    return ap


def _run_agent_command(args: argparse.Namespace) -> int:
    with AgentClient(resolve_agent(args.agent), timeout_s=args.timeout) as c:
        def out(msg: Any, human: Callable[[Any], str]) -> None:
            print(fmt.as_json(msg) if args.json else human(msg))

        if args.command == "caps":
            out(c.capabilities(), fmt.capabilities)
        elif args.command == "health":
            h = c.health()
            out(h, lambda h: f"{h.status}: agent {h.agent_version}, {h.active_faults} active fault(s), "
                             f"netns {h.netns or '-'}, clock {fmt.when(h.now)}")
        elif args.command == "inject":
            spec = fault_spec(
                args.kind, args.interface, peers=args.peer, ports=args.port, direction=args.direction,
                protocol=args.protocol, lease_s=args.duration, mechanism=args.mechanism, label=args.label,
                loss_percent=getattr(args, "percent", None),
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
    return 0


def _run_lab(args: argparse.Namespace) -> int:
    from controller.lab import Lab, agent_alive

    lab = Lab(progress=lambda m: print(m, file=sys.stderr))
    if args.lab_command == "up":
        state = lab.up([h.strip() for h in args.hosts.split(",") if h.strip()])
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lab":
            return _run_lab(args)
        if args.command == "demo":
            from controller.demo import run_demo

            return run_demo()
        return _run_agent_command(args)
    except AgentError as e:
        print(f"faultline: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TimeoutError, RuntimeError, PermissionError) as e:
        print(f"faultline: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
