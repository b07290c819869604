"""The faultline command line: one small function per command adds its parser; every default
lives in DEFAULTS, so a handler reads args.NAME and never repeats one.

Over 300 lines: it is the whole CLI's text (helps, descriptions, examples); each command's
function is short.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faultline.controller.agents.spec import EVENT_KINDS

Sub = Any  # argparse's subparsers action (a private class)

# Every option's default, by its dest. The kinds of `inject` share one namespace: each kind's
# parser sets all of FAULT's, so the inject handler reads any of them whatever the kind.
DEFAULTS: dict[str, Any] = {
    "timeout": 10.0, "duration": 30.0, "label": "", "peer": [], "port": [],
    "lab_hosts": "trader,gateway,broker", "ready_timeout": 60.0, "vm_ready_timeout": 300.0,
    "then": "faultline lab status", "rtt_every": 0.1, "for_s": 0.0, "since": 0.0,
    "controller_name": "faultline-controller", "vm_out": Path("build/vm"), "memory": "2G", "cpus": 2,
    "vm_timeout": 900.0, "reset_duration": 5.0, "max_data_loss": 0.05,
}
FAULT: dict[str, Any] = {
    "interface": "", "direction": "", "protocol": "any", "mechanism": "auto", "queue_limit": 0,
    "percent": None, "gemodel": None, "correlation": 0.0, "delay": 0.0, "jitter": 0.0,
    "distribution": "uniform", "preserve_order": False, "gap": 0, "rate": 0, "overhead": 0,
}

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



def _agent_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", default=os.environ.get("FAULTLINE_AGENT"),
                   required="FAULTLINE_AGENT" not in os.environ,
                   help="HOST[:PORT] of the agent (port 7070 unless given), or a lab host name (env FAULTLINE_AGENT)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=duration, default=DEFAULTS["timeout"], help="deadline of each call (default 10s)")


def _selector_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", default=FAULT["interface"],
                   help="interface on the agent's host (default: the one routing to --peer)")
    p.add_argument("--peer", action="append", default=[], metavar="CIDR",
                   help="remote address(es) to fault, IPv4 or IPv6 (repeatable; default: all)")
    p.add_argument("--port", action="append", type=port, default=[], metavar="PORT",
                   help="source or destination port (repeatable; default: all)")
    p.add_argument("--direction", choices=("egress", "ingress", "both"), default=FAULT["direction"],
                   help="default: both for disconnect/loss, egress for the netem-only kinds")
    p.add_argument("--protocol", choices=("any", "tcp", "udp", "icmp"), default=FAULT["protocol"])
    p.add_argument("--duration", type=duration, default=DEFAULTS["duration"],
                   help="lease: the agent heals the fault after this long (default 30s)")
    p.add_argument("--mechanism", choices=("auto", "ebpf", "netem"), default=FAULT["mechanism"],
                   help="auto: eBPF for disconnect/loss when it can, netem otherwise")
    _label(p)
    p.add_argument("--queue-limit", type=int, default=FAULT["queue_limit"], metavar="PACKETS",
                   help="netem queue limit (default: sized by the agent from rate x delay)")


def _label(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", default=DEFAULTS["label"], help="free text shown in listings")


def _correlation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--correlation", type=float, default=FAULT["correlation"], metavar="PERCENT",
                   help="0-100: how much each random draw depends on the previous one (netem)")


def _watch_filter_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peer", action="append", default=[], metavar="CIDR",
                   help="remote address(es) (repeatable; default: all)")
    p.add_argument("--port", action="append", type=port, default=[], metavar="PORT",
                   help="local or remote port (repeatable; default: all)")


# Each kind's --help ends with these (the address is an agent; port 7070 unless given).
KIND_EXAMPLES = {
    "disconnect": "faultline inject --agent 10.1.0.5 disconnect --peer 10.1.0.6/32 --duration 10s\n"
                  "faultline inject --agent 10.1.0.5 disconnect --peer 10.1.0.6/32 --port 5432 --direction egress",
    "loss": "faultline inject --agent 10.1.0.5 loss --percent 20 --peer 10.1.0.6/32 --duration 1m\n"
            "faultline inject --agent 10.1.0.5 loss --gemodel 5,30,90,1 --mechanism netem --peer 10.1.0.6/32",
    "delay": "faultline inject --agent 10.1.0.5 delay --delay 100ms --jitter 10ms --distribution normal "
             "--peer 10.1.0.6/32",
    "duplicate": "faultline inject --agent 10.1.0.5 duplicate --percent 5 --peer 10.1.0.6/32",
    "corrupt": "faultline inject --agent 10.1.0.5 corrupt --percent 1 --peer 10.1.0.6/32",
    "reorder": "faultline inject --agent 10.1.0.5 reorder --percent 25 --delay 10ms --peer 10.1.0.6/32",
    "rate": "faultline inject --agent 10.1.0.5 rate --rate 1mbit --peer 10.1.0.6/32 --port 5432",
    "reset": "faultline inject --agent 10.1.0.6 reset --port 5432\n"
             "faultline inject --agent 10.1.0.6 reset --peer 10.1.0.5/32",
    "process": "faultline inject --agent 10.1.0.6 process pause --name postgres --duration 5s\n"
               "faultline inject --agent 10.1.0.6 process kill --name redis-server --restart redis --duration 3s\n"
               "faultline inject --agent 10.1.0.6 process restart-unit --unit redis-server.service",
}


def _examples(text: str) -> str:
    return "examples:\n" + "\n".join(f"  {x}" if x else "" for x in text.splitlines())


def _kind(kinds: Sub, name: str, **kw: Any) -> argparse.ArgumentParser:
    kw.setdefault("epilog", _examples(KIND_EXAMPLES[name]))
    kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    k = kinds.add_parser(name, **kw)
    k.set_defaults(**FAULT)  # every kind's handler reads the same fields
    return k


def _command(sub: Sub, name: str, help: str, examples: str, description: str | None = None,
             ) -> argparse.ArgumentParser:
    """A command's parser whose --help ends with its examples (one per line, as typed)."""
    return sub.add_parser(name, help=help, description=description, epilog=_examples(examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


# -- one function per command ------------------------------------------------------
def add_caps(sub: Sub) -> None:
    _agent_opts(_command(sub, "caps", "what the agent's kernel can do, and the host policy's limits in force",
                         "faultline caps --agent 10.1.0.5\nfaultline caps --agent trader --json"))


def add_health(sub: Sub) -> None:
    _agent_opts(_command(
        sub, "health", "is the agent serving, and if not why; its clock's offset from this host (NTP-style)",
        "faultline health --agent 10.1.0.5\nfaultline health --agent 10.1.0.5:7070 --json\n\n"
        "exit status: 0 SERVING; 1 DEGRADED (each reason printed: a BPF program or TCP observation\n"
        "that failed, an undo pending from an earlier run, a fault HEAL_FAILED, the audit log, the\n"
        "certificate expiring within 7 days); 2 the agent cannot be reached or refuses us.\n"
        "(a monitoring check: `faultline health --agent HOST || alert`)"))


def add_inject(sub: Sub) -> None:
    p = sub.add_parser("inject", help="apply a fault", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _agent_opts(p)
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    _selector_opts(_kind(kinds, "disconnect", help="drop every matching packet"))
    k = _kind(kinds, "loss", help="drop each matching packet with a probability, or in bursts (netem)")
    g = k.add_mutually_exclusive_group(required=True)
    g.add_argument("--percent", type=float, help="0 < percent <= 100")
    g.add_argument("--gemodel", type=gemodel, metavar="P,R[,1-H[,1-K]]",
                   help="Gilbert-Elliott burst loss in percent, as tc: good->bad, bad->good, loss in bad, in good")
    _correlation(k)
    _selector_opts(k)
    k = _kind(kinds, "delay", help="delay matching packets (netem)")
    k.add_argument("--delay", type=duration, required=True, help="e.g. 100ms, 2s (at most 60s)")
    k.add_argument("--jitter", type=duration, default=FAULT["jitter"], help="spread around --delay (default 0)")
    k.add_argument("--distribution", choices=("uniform", "normal", "pareto", "paretonormal"),
                   default=FAULT["distribution"],
                   help="of the jitter: uniform in +-jitter (netem's default), normal with stdev = jitter, ...")
    k.add_argument("--preserve-order", action="store_true",
                   help="with jitter, keep packets in order (netem reorders them otherwise)")
    _correlation(k)
    _selector_opts(k)
    for name, what in (("duplicate", "send matching packets twice"), ("corrupt", "flip a bit in matching packets")):
        k = _kind(kinds, name, help=f"{what}, with a probability (netem)")
        k.add_argument("--percent", type=float, required=True, help="0 < percent <= 100")
        _correlation(k)
        _selector_opts(k)
    k = _kind(kinds, "reorder", help="send some packets at once, ahead of the delayed rest (netem)")
    k.add_argument("--percent", type=float, required=True, help="0 < percent <= 100 of packets sent early")
    k.add_argument("--delay", type=duration, required=True, help="the delay the other packets get")
    k.add_argument("--gap", type=int, default=FAULT["gap"], help="reorder every GAP-th packet instead of at random")
    _correlation(k)
    _selector_opts(k)
    k = _kind(kinds, "rate", help="limit matching traffic's bandwidth (netem)")
    k.add_argument("--rate", type=rate, required=True, help="e.g. 500kbit, 1mbit, 10gbit")
    k.add_argument("--overhead", type=int, default=FAULT["overhead"],
                   help="bytes added to each packet when pacing (-128..128)")
    _selector_opts(k)
    _add_reset(kinds)
    _add_process(kinds)


def _add_reset(kinds: Sub) -> None:
    k = _kind(kinds,
        "reset", help="reset established TCP connections now (peer gets a RST), as `ss -K` does",
        description="Destroy this host's established TCP connections to --peer and/or on --port "
                    "(one of them required; the agent's own port and SSH are never touched). The peer "
                    "sees 'connection reset by peer'. Done once; the fault is listed until --duration ends.")
    k.add_argument("--peer", action="append", default=[], metavar="CIDR", help="remote address(es) (repeatable)")
    k.add_argument("--port", action="append", type=port, default=[], metavar="PORT",
                   help="local or remote port (repeatable)")
    k.add_argument("--duration", type=duration, default=DEFAULTS["reset_duration"],
                   help="how long the fault is listed (default 5s)")
    _label(k)


def _add_process(kinds: Sub) -> None:
    k = kinds.add_parser(
        "process", help="pause, stop, kill or restart processes of the agent's host",
        epilog=_examples(KIND_EXAMPLES["process"]), formatter_class=argparse.RawDescriptionHelpFormatter,
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
    k.add_argument("--duration", type=duration, default=DEFAULTS["duration"],
                   help="pause: how long; kill, stop: until the restart command runs (default 30s)")
    _label(k)


def add_heal(sub: Sub) -> None:
    p = _command(sub, "heal", "heal one fault, or all of them",
                 "faultline heal --agent 10.1.0.5 f-3a9c01\nfaultline heal --agent 10.1.0.5 --all")
    _agent_opts(p)
    p.add_argument("fault_id", nargs="?")
    p.add_argument("--all", action="store_true", help="heal every fault on the agent")


def add_list(sub: Sub) -> None:
    p = _command(sub, "list", "active faults with their kernel counters (matched, dropped) and labels",
                 "faultline list --agent 10.1.0.5\nfaultline list --agent trader --healed --json")
    _agent_opts(p)
    p.add_argument("--healed", action="store_true", help="also the recently healed ones")


def add_renew(sub: Sub) -> None:
    p = _command(sub, "renew", "extend a fault's lease, counted from now",
                 "faultline renew --agent 10.1.0.5 f-3a9c01 --duration 2m")
    _agent_opts(p)
    p.add_argument("fault_id")
    p.add_argument("--duration", type=duration, required=True)


def add_watch(sub: Sub) -> None:
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
    p.add_argument("--rtt-every", type=duration, default=DEFAULTS["rtt_every"], metavar="DURATION",
                   help="at most one RTT sample per connection this often (default 100ms; 0: every segment)")
    p.add_argument("--no-counters", action="store_true", help="do not show the active faults' counters")
    p.add_argument("--for", dest="for_s", type=duration, default=DEFAULTS["for_s"], metavar="DURATION",
                   help="stop after this long (default: until Ctrl-C)")


def add_flows(sub: Sub) -> None:
    p = _command(sub, "flows", "per connection: states, retransmits, resets, RTT percentiles (from watches)",
                 "faultline flows --agent 10.1.0.5 --port 5432\nfaultline flows --agent trader --since 1m --json",
                 description="Summaries of the connections that watch streams on this agent have seen "
                             "(the agent records only while a watch stream is open).")
    _agent_opts(p)
    _watch_filter_opts(p)
    p.add_argument("--since", type=duration, default=DEFAULTS["since"], metavar="DURATION",
                   help="only flows with an event in the last DURATION (default: all remembered)")


def add_lab(sub: Sub) -> None:
    lab = _command(sub, "lab", "a lab of hosts as network namespaces, one agent each (root)",
                   "faultline lab up --hosts trader,gateway,broker\nfaultline lab status\nfaultline lab down\n"
                   "faultline lab up --vm --then 'faultline caps --agent trader'")
    lsub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = _command(lsub, "up", "create the hosts and start their agents (idempotent)",
                  "faultline lab up --hosts trader,gateway,broker\n"
                  "faultline lab up --vm --then 'faultline caps --agent trader'")
    up.add_argument("--hosts", default=DEFAULTS["lab_hosts"], help="comma-separated names (default %(default)s)")
    up.add_argument("--ready-timeout", type=float, default=DEFAULTS["ready_timeout"], metavar="S",
                    help="how long each agent may take to compile its BPF programs and serve (default %(default)s; "
                         "--vm uses 300: TCG is slow)")
    up.add_argument("--vm", action="store_true",
                    help="in a VM with Debian's kernel (netem): boot, lab up, run --then, lab down, power off")
    up.add_argument("--then", default=DEFAULTS["then"], metavar="COMMAND",
                    help="with --vm: what to run once the lab is up (default: %(default)r)")
    _command(lsub, "status", "what the lab made, and whether each agent answers", "faultline lab status")
    _command(lsub, "down", "remove every namespace, link, agent and state dir the lab made (idempotent)",
             "faultline lab down")


def add_demo(sub: Sub) -> None:
    _command(sub, "demo", "the trading lab under four faults (partition, latency, loss, broker kill) "
                          "with the RECOVERY SCORECARD; lab down after, nothing left", "sudo faultline demo")


def add_certs(sub: Sub) -> None:
    certs = sub.add_parser(
        "certs", help="mTLS for a fleet: one CA on the controller, a certificate per agent host and per controller",
        description="One CA kept on the controller (DIR, its key 0600 never leaves it); under it a certificate "
                    "per agent host (naming every address it is reached by: the controller checks the one it "
                    "dials) and per controller (agents admit the subjects their allowed_clients name). Keys are "
                    "ECDSA P-256, written 0600. An agent reloads its files on SIGHUP.",
        epilog="examples:\n"
               "  faultline certs init ~/faultline-ca\n"
               "  faultline certs issue-agent ~/faultline-ca trader1 --ip 10.1.0.5 --out build/tls/trader1\n"
               "  faultline certs issue-controller ~/faultline-ca qa-alice --out ~/.faultline/tls\n"
               "  faultline certs list ~/faultline-ca\n"
               "  FAULTLINE_TLS_DIR=~/faultline-ca faultline health --agent 10.1.0.5\n\n"
               "Copy OUT to the host (e.g. make install TLS_FROM=OUT, or the Ansible role) as its --tls-dir.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    ci = csub.add_parser("init", help="make the CA and this controller's certificate in DIR (never replaces a CA)",
                         epilog="example:\n  faultline certs init ~/faultline-ca --controller-name qa-ci",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ci.add_argument("dir", type=Path, metavar="DIR")
    ci.add_argument("--agent-host", action="append", default=[], metavar="NAME_OR_IP",
                    help="one-host setup: also an agent.pem naming this address (repeatable)")
    ci.add_argument("--controller-name", default=DEFAULTS["controller_name"],
                    help="the controller certificate's CN (default %(default)s)")
    ia = csub.add_parser("issue-agent", help="a certificate for one agent host, under DIR's CA",
                         epilog="example:\n  faultline certs issue-agent ~/faultline-ca db1 --ip 10.1.0.6 "
                                "--dns db1.example.net --out build/tls/db1",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ia.add_argument("dir", type=Path, metavar="DIR")
    ia.add_argument("host", metavar="HOST", help="the host's name: the certificate's CN, and a name it carries")
    ia.add_argument("--ip", action="append", default=[], metavar="ADDR",
                    help="an address the controller dials it at (repeatable)")
    ia.add_argument("--dns", action="append", default=[], metavar="NAME", help="another DNS name (repeatable)")
    ia.add_argument("--out", type=Path, required=True, metavar="OUT",
                    help="gets ca.pem, agent.pem, agent-key.pem (0600): the host's --tls-dir")
    ic = csub.add_parser("issue-controller", help="a certificate for another controller or QA engineer",
                         epilog="example:\n  faultline certs issue-controller ~/faultline-ca qa-alice --out "
                                "~/.faultline/tls\n  (agents admit it with allowed_clients: [CN=qa-alice])",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ic.add_argument("dir", type=Path, metavar="DIR")
    ic.add_argument("cn", metavar="CN", help="the subject agents' allowed_clients name (as CN=...)")
    ic.add_argument("--out", type=Path, required=True, metavar="OUT",
                    help="gets ca.pem, controller.pem, controller-key.pem (0600): a FAULTLINE_TLS_DIR")
    cl = csub.add_parser("list", help="every certificate issued under DIR's CA: subject, names, expiry",
                         epilog="example:\n  faultline certs list ~/faultline-ca",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    cl.add_argument("dir", type=Path, metavar="DIR")


def add_run(sub: Sub) -> None:
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
               "The scenario format: docs/scenarios.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="results dir (default build/runs/<time>); one subdir per scenario, junit.xml of all")
    p.add_argument("--config", type=Path, default=None, metavar="PATH",
                   help="resilience config for targets a scenario does not set "
                        "(default contracts/resilience_config.yaml)")
    p.add_argument("--keep-lab", action="store_true", help="leave a lab the run brought up running afterwards")
    p.add_argument("--tls-dir", type=Path, default=os.environ.get("FAULTLINE_TLS_DIR") or None, metavar="DIR",
                   help="mTLS to the real hosts' agents: ca.pem, controller.pem, controller-key.pem "
                        "(env FAULTLINE_TLS_DIR; a lab's are found by themselves)")
    p.add_argument("--ssh-config", type=Path, default=os.environ.get("FAULTLINE_SSH_CONFIG") or None, metavar="FILE",
                   help="ssh -F FILE for the processes and probes a scenario runs on real hosts (hosts.NAME.ssh; "
                        "default: your own ~/.ssh/config; env FAULTLINE_SSH_CONFIG)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the results")


def add_vm(sub: Sub) -> None:
    vm = sub.add_parser(
        "vm", help="run a command inside a VM with Debian's kernel (netem, kprobes), e.g. the netem tests",
        description="Boot /boot/vmlinuz-*-amd64 with virtme-ng (this filesystem as the VM's root), run COMMAND "
                    "in this checkout with its venv, print its output, exit with its exit code. Files written "
                    "under $FAULTLINE_VM_OUT inside the VM land in --out.",
        epilog="example:  faultline vm -- faultline demo\n          faultline vm --out build/vm -- "
               "python -m pytest tests/vm", formatter_class=argparse.RawDescriptionHelpFormatter)
    vm.add_argument("--out", type=Path, default=DEFAULTS["vm_out"], help="read-write results dir (default %(default)s)")
    vm.add_argument("--kvm", action="store_true", help="use KVM (default TCG: KVM guests hang on Firecracker hosts)")
    vm.add_argument("--memory", default=DEFAULTS["memory"])
    vm.add_argument("--cpus", type=int, default=DEFAULTS["cpus"])
    vm.add_argument("--timeout", type=duration, default=DEFAULTS["vm_timeout"],
                    help="give up after this long (default 15m)")
    vm.add_argument("--systemd", action="store_true",
                    help="boot with systemd as PID 1 (units, systemctl; ~2 min to multi-user under TCG)")
    vm.add_argument("vm_command", nargs=argparse.REMAINDER, metavar="-- COMMAND")


def add_readiness(sub: Sub) -> None:
    p = sub.add_parser(
        "readiness", help="the Production Readiness Checklist, judged from a chaos run's results file",
        description="Print each line of the Production Readiness Checklist with ✓ or ✗ and the figures behind "
                    "it (every scenario passed; recovery within the RTO; data loss within the target; no lost "
                    "or duplicated orders, positions intact; market-data continuity; every fault rolled back). "
                    "A line no scenario measured does not hold.",
        epilog="examples:\n  faultline readiness build/chaos/results.json      # the chaos suite's\n"
               "  faultline readiness chaos.json                   # pytest --faultline-json=chaos.json\n\n"
               "exit status: 0 every line holds; 1 one does not; 2 the file is not a results file.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, metavar="RESULTS.json")
    p.add_argument("--max-data-loss", type=float, default=DEFAULTS["max_data_loss"], metavar="RATIO",
                   help="the data-loss line's target (default 0.05, the resilience config's)")


COMMANDS: tuple[Callable[[Sub], None], ...] = (
    add_caps, add_health, add_inject, add_heal, add_list, add_renew, add_watch, add_flows, add_lab, add_demo,
    add_certs, add_run, add_readiness, add_vm)


def build_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="faultline", description=description, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return ap
