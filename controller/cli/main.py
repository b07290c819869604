"""faultline: inject kernel-level network faults on trading hosts and watch them heal."""

# The parser is parser.py (one function per command, the defaults in one place); this module
# runs what was asked. (Not in the docstring: it is --help's text.)

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faultline.controller.agents import format as fmt
from faultline.controller.agents.client import AgentClient, AgentError, agent_address
from faultline.controller.agents.spec import (
    TARGET_BY,
    Corrupt,
    Delay,
    Disconnect,
    Duplicate,
    Loss,
    Params,
    Rate,
    Reorder,
    Reset,
    fault_spec,
    process_spec,
    watch_filter,
)
from faultline.controller.cli import parser
from faultline.controller.cli.parser import DEFAULTS
from faultline.controller.run.interrupt import sigterm_as_interrupt


def build_parser() -> argparse.ArgumentParser:
    return parser.build_parser(__doc__ or "")


def resolve_agent(name: str) -> str:
    """A lab host's name, or HOST[:PORT] (port 7070 unless given)."""
    if ":" not in name:
        from faultline.controller.env.lab import Lab

        state = Lab().load()
        if state is not None and name in state.hosts:
            return state.hosts[name].agent
    try:
        return agent_address(name)
    except ValueError as e:
        raise SystemExit(f"faultline: error: --agent {e}") from None


# Commands with --json: it is accepted anywhere on their command line (also after inject's KIND).
JSON_COMMANDS = {"caps", "health", "inject", "heal", "list", "renew", "watch", "flows"}


def _lift_json(argv: list[str]) -> list[str]:
    if not argv or argv[0] not in JSON_COMMANDS or "--json" not in argv:
        return argv
    end = argv.index("--") if "--" in argv else len(argv)
    if "--json" not in argv[:end]:
        return argv
    return [argv[0], "--json", *(a for a in argv[1:end] if a != "--json"), *argv[end:]]


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
            print(fmt.health_json(h, offset) if args.json else fmt.health(h, offset))
            return 0 if h.status == "SERVING" else 1
        elif args.command == "inject" and args.kind == "process":
            target = {by: getattr(args, by) for by in TARGET_BY if getattr(args, by) is not None}
            spec = process_spec(args.action, args.duration, restart=args.restart, label=args.label,
                                **target)
            r = c.apply(spec)
            out(r, lambda r: fmt.process_applied(r, args.action, spec))
        elif args.command == "inject":
            spec = fault_spec(
                kind_params(args), args.interface, peers=args.peer, ports=args.port, direction=args.direction,
                protocol=args.protocol, lease_s=args.duration, mechanism=args.mechanism, label=args.label,
                queue_limit=args.queue_limit,
            )
            r = c.apply(spec)
            out(r, fmt.applied)
        elif args.command == "heal":
            if bool(args.fault_id) == bool(args.all):
                raise SystemExit("faultline heal: error: give a FAULT_ID or --all, not both or neither")
            faults = c.heal_all() if args.all else [c.heal(args.fault_id)]
            out(faults, fmt.fault_table)
        elif args.command == "list":
            out(c.list(args.healed), fmt.fault_table)
        elif args.command == "renew":
            r = c.renew(args.fault_id, args.duration)
            out(r, lambda r: fmt.renewed(args.fault_id, r))
        elif args.command == "flows":
            since = time.time_ns() - int(args.since * 1e9) if args.since else 0
            out(c.summarize(watch_filter(ports=args.port, peers=args.peer), since), fmt.flow_table)
        elif args.command == "watch":
            return _watch(c, args)
    return 0


def kind_params(args: argparse.Namespace) -> Params:
    """The inject kind's own options as its parameters (parser.DEFAULTS gives every kind all of them)."""
    percent, corr, ms = args.percent or 0.0, args.correlation, 1000
    return {
        "disconnect": lambda: Disconnect(),
        "reset": lambda: Reset(),
        "loss": lambda: Loss(percent=percent, correlation=corr, gilbert_elliott=args.gemodel),
        "delay": lambda: Delay(delay_ms=args.delay * ms, jitter_ms=args.jitter * ms, correlation=corr,
                               distribution=args.distribution, preserve_order=args.preserve_order),
        "duplicate": lambda: Duplicate(percent=percent, correlation=corr),
        "corrupt": lambda: Corrupt(percent=percent, correlation=corr),
        "reorder": lambda: Reorder(percent=percent, correlation=corr, delay_ms=args.delay * ms, gap=args.gap),
        "rate": lambda: Rate(bits_per_second=args.rate, packet_overhead=args.overhead),
    }[args.kind]()


def _watch(c: AgentClient, args: argparse.Namespace) -> int:
    f = watch_filter(args.kind, args.port, args.peer, round(args.rtt_every * 1000), not args.no_counters)
    w = c.watch(f)
    if args.for_s:
        threading.Timer(args.for_s, w.cancel).start()

    def show(item: Any) -> None:
        print(fmt.watch_json(item) if args.json
              else fmt.watch_event(item), flush=True)

    show(w.header())
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
        inner = (f"faultline lab up --ready-timeout {DEFAULTS['vm_ready_timeout']:g} --hosts "
                 f"{shlex.quote(args.hosts)} && {args.then}; faultline lab down")
        return _run_vm(build_parser().parse_args(["vm", "--", "bash", "-c", inner]))  # the vm command's defaults
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
                        health = fmt.health_short(c.health())
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
    with sigterm_as_interrupt():  # a cancelled CI job heals and rolls back as Ctrl-C does
        return run_scenarios(scenarios, out, keep_lab=args.keep_lab, quiet=args.quiet, tls_dir=args.tls_dir,
                             ssh_config=args.ssh_config)


def _run_certs(args: argparse.Namespace) -> int:
    from faultline.controller.env import certs

    if args.certs_command == "list":
        rows = [("SERIAL", "ROLE", "SUBJECT", "NAMES", "EXPIRES")]
        rows += [(i.serial[:16], i.role, i.subject, ",".join(i.names) or "-", f"{i.not_after:%Y-%m-%d}")
                 for i in certs.list_issued(args.dir)]
        print(fmt.table(rows))
        return 0
    if args.certs_command == "issue-agent":
        files = certs.issue_agent(args.dir, args.host, args.ip, args.dns, args.out)
        print("\n".join(map(str, files.values())))
        print(f"the host's --tls-dir: copy {args.out} there (make install TLS_FROM={args.out}); it admits the "
              "controllers its allowed_clients name")
        return 0
    if args.certs_command == "issue-controller":
        files = certs.issue_controller(args.dir, args.cn, args.out)
        print("\n".join(map(str, files.values())))
        print(f"FAULTLINE_TLS_DIR={args.out}; agents admit it with allowed_clients: [CN={args.cn}]")
        return 0
    files = certs.init(args.dir, args.agent_host, args.controller_name)
    for name, path in files.items():
        print(f"{path}{'  (secret: keep it on this host)' if name == 'ca-key.pem' else ''}")
    print(f"controller: FAULTLINE_TLS_DIR={args.dir}; each agent host: `faultline certs issue-agent {args.dir} HOST "
          f"--ip ADDR --out DIR`, and allowed_clients: [CN={args.controller_name}] in its policy")
    return 0


def _run_demo(_args: argparse.Namespace) -> int:
    from faultline.controller.cli.demo import run_demo

    with sigterm_as_interrupt():
        return run_demo()


def _run_readiness(args: argparse.Namespace) -> int:
    from faultline.controller.suite import readiness

    try:
        cases = readiness.load(args.results)
    except ValueError as e:
        print(f"faultline readiness: error: {e}", file=sys.stderr)
        return 2
    lines = readiness.checklist(cases, args.max_data_loss)
    print(readiness.render(lines))
    return 0 if all(x.ok for x in lines) else 1


# The commands that do not talk to one agent; every other command does (_run_agent_command).
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "lab": _run_lab, "vm": _run_vm, "run": _run_scenarios, "certs": _run_certs, "demo": _run_demo,
    "readiness": _run_readiness}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_lift_json(sys.argv[1:] if argv is None else list(argv)))
    try:
        return HANDLERS.get(args.command, _run_agent_command)(args)
    except AgentError as e:
        print(f"faultline: error: {e}", file=sys.stderr)
        return 2 if args.command == "health" else 1  # health: 2 = cannot reach the agent, or it refuses us
    except (ValueError, TimeoutError, RuntimeError, PermissionError, FileExistsError, FileNotFoundError) as e:
        print(f"faultline: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
