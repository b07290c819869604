"""faultline-agent: serve the Agent API, or clean up what an earlier run left in the kernel."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the agent's heavy imports happen in serve(), after --netns is entered
    from faultline.agent.rpc.tls import ServerTls
    from faultline.agent.runtime import AgentRuntime

EPILOG = """\
examples:
  faultline-agent serve --tls-dir /etc/faultline/tls --policy /etc/faultline/agent.yaml
  faultline-agent serve --insecure --listen 127.0.0.1:7070 --state-dir /run/faultline-try   # a try on one machine
  faultline-agent serve --tls-dir /run/faultline-lab/fl-tls --allow-client CN=faultline-lab-controller \
      --netns fl-trader --listen 10.77.0.1:7070 --state-dir /run/faultline-lab/fl-trader/state   # what the lab runs
  systemctl reload faultline-agent      # reload the policy and the certificates (under systemd)
  faultline-agent reload --state-dir /var/lib/faultline   # the same, for an agent started by hand
  faultline-agent cleanup --state-dir /var/lib/faultline

Every kernel change is journalled under --state-dir before it is made. On start, and
with `cleanup`, the agent undoes whatever a previous run left behind. SIGTERM heals
every fault before the agent exits; each fault also heals itself when its lease runs out.
"""


DEFAULT_STATE_DIR = Path("/var/lib/faultline")
# A SIGTERM mid-compile waits this long for the build it is inside to end and be closed.
COMPILE_JOIN_S = 10.0
DEFAULT_AUDIT_LOG = Path("/var/log/faultline/audit.jsonl")  # the unit's LogsDirectory


def _ports(text: str) -> tuple[int, ...]:
    ports = tuple(int(p) for p in text.split(",") if p.strip())
    for p in ports:
        if not 1 <= p <= 65535:
            raise argparse.ArgumentTypeError(f"port {p} outside 1-65535")
    return ports


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="faultline-agent", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the gRPC Agent API", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--listen", default="0.0.0.0:7070", help="ADDR:PORT to listen on (default %(default)s)")
    s.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="where the journal lives (default %(default)s)")
    s.add_argument("--netns", default="", help="enter this named network namespace before anything else")
    s.add_argument("--exclude-ports", type=_ports, default=(22,), metavar="P1,P2",
                   help="ports never faulted, besides the agent's own (default 22)")
    s.add_argument("--max-lease", type=float, default=3600.0, metavar="SECONDS",
                   help="longest lease a fault may ask for (default %(default)s)")
    s.add_argument("--allow-interface", action="append", metavar="IFNAME",
                   help="only these interfaces may be faulted (repeatable; default: any but lo)")
    s.add_argument("--tls-dir", type=Path, metavar="DIR",
                   help="mTLS: DIR/agent.pem, agent-key.pem and ca.pem (the CA clients' certificates must chain "
                        "to); see `faultline certs init`")
    s.add_argument("--allow-client", action="append", default=[], metavar="SUBJECT",
                   help="a client certificate subject allowed to call, e.g. CN=faultline-controller (repeatable; "
                        "added to the policy's allowed_clients)")
    s.add_argument("--policy", type=Path, default=None, metavar="PATH",
                   help="what may be faulted here (default /etc/faultline/agent.yaml if it exists, else built-in "
                        "defaults: any interface but lo, any peer)")
    s.add_argument("--audit-log", type=Path, default=None, metavar="PATH",
                   help="one JSON line per request and per kernel change (default /var/log/faultline/audit.jsonl "
                        "with the default state dir, else STATE_DIR/audit.jsonl)")
    s.add_argument("--audit-max-mb", type=float, default=16.0, metavar="MB",
                   help="rotate the audit log past this size (default %(default)s)")
    s.add_argument("--audit-keep", type=int, default=5, metavar="N",
                   help="rotated audit logs kept (default %(default)s)")
    s.add_argument("--insecure", action="store_true",
                   help="serve plaintext gRPC without client authentication: only on a loopback --listen or "
                        "inside --netns (logged loudly)")
    s.add_argument("--clock-skew-ms", type=float, default=0.0, metavar="MS",
                   help="lab only (needs --netns): report realtime MS off, to test the controller's clock "
                        "correction")
    s.add_argument("-v", "--verbose", action="store_true")
    c = sub.add_parser("cleanup", help="undo what a previous run left in the kernel, then exit",
                       epilog="example:\n  faultline-agent cleanup --state-dir /var/lib/faultline",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--state-dir", type=Path, default=Path("/var/lib/faultline"))
    r = sub.add_parser("reload", help="make the agent serving STATE_DIR re-read its policy and certificates",
                       description="Sends SIGHUP to the agent that holds STATE_DIR's lock (systemctl reload "
                                   "faultline-agent does the same under systemd). A bad policy or certificate "
                                   "is refused by the agent, which keeps what is in force and logs why.",
                       epilog="example:\n  faultline-agent reload --state-dir /var/lib/faultline",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--state-dir", type=Path, default=Path("/var/lib/faultline"))
    return ap


def reload(args: argparse.Namespace) -> int:
    from faultline.agent.domain.statelock import serving_pid

    pid = serving_pid(args.state_dir)
    if pid is None:
        print(f"faultline-agent reload: no agent serves {args.state_dir}", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"SIGHUP sent to the agent serving {args.state_dir} (pid {pid}); its log says what it reloaded")
    return 0


def serve(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.netns:
        from pyroute2 import netns

        netns.setns(args.netns, flags=0)  # before any thread or socket exists
    from faultline.agent.kernel.capabilities import mount_tracefs_privately

    tracefs_error = mount_tracefs_privately()  # also before any thread: the TCP probes need tracefs
    from faultline.agent.domain import policy as policies
    from faultline.agent.domain import trust
    from faultline.agent.domain.errors import FailedPrecondition
    from faultline.agent.rpc import server as rpc_server
    from faultline.agent.runtime import AgentConfig, AgentRuntime

    log = logging.getLogger("faultline-agent")
    if tracefs_error:
        log.error("TCP observation unavailable (Health says DEGRADED): tracefs missing and not mountable: %s",
                  tracefs_error)
    if bool(args.tls_dir) == bool(args.insecure):
        log.error("give --tls-dir DIR (mTLS) or, for a lab, --insecure (plaintext: anyone who reaches %s can "
                  "fault this host); exactly one of them", args.listen)
        return 2
    if args.insecure and not (args.netns or _loopback(args.listen)):
        log.error("--insecure listens only on loopback (e.g. --listen 127.0.0.1:7070) or inside --netns: "
                  "plaintext on %s would let anyone who reaches it fault this host as root", args.listen)
        return 2
    policy_path = args.policy or (policies.DEFAULT_PATH if policies.DEFAULT_PATH.exists() else None)
    try:  # what root trusts: root's alone, no links (the one line names the path and what is wrong)
        trust.directory(args.state_dir, "state dir", create=True)
        if args.audit_log is None and args.state_dir == DEFAULT_STATE_DIR:  # its own disk's worth, not the journal's
            args.audit_log = DEFAULT_AUDIT_LOG
        if args.audit_log:
            trust.directory(args.audit_log.parent, "the audit log's directory", create=True)
        if policy_path:
            trust.file(policy_path, "policy")
        if args.tls_dir:
            trust.directory(args.tls_dir, "TLS dir")
            trust.file(args.tls_dir / "agent-key.pem", "TLS key")
    except FailedPrecondition as e:
        log.error("%s", e)
        return 2
    try:
        policy = policies.load(policy_path) if policy_path else policies.Policy()
    except policies.PolicyError as e:
        log.error("policy: %s", e)
        return 2
    if args.allow_client:
        try:
            extra = policies.check_clients("--allow-client", args.allow_client)
        except policies.PolicyError as e:
            log.error("%s", e)
            return 2
        policy = dataclasses.replace(policy, allowed_clients=policy.allowed_clients | extra)
    if args.tls_dir and not policy.allowed_clients:
        log.error("mTLS with no allowed client: list subjects in the policy's allowed_clients or --allow-client")
        return 2
    if policy_path is None:
        log.warning("no policy file: any interface but lo and any peer may be faulted (limits: lease %g s)",
                    policy.max_lease_s)
    if args.clock_skew_ms:
        if not args.netns:
            log.error("--clock-skew-ms is for lab agents (with --netns) only")
            return 2
        from faultline.agent.domain import clock

        clock.set_skew(round(args.clock_skew_ms * 1e6))
        log.warning("LAB: this agent reports realtime %+.3f ms off the host's clock", args.clock_skew_ms)
    if not 0.1 <= args.max_lease <= 86_400:
        log.error("--max-lease must be 0.1 to 86400 seconds")
        return 2
    config = AgentConfig(
        listen=args.listen, state_dir=args.state_dir, netns=args.netns,
        excluded_ports=args.exclude_ports, max_lease_ms=int(args.max_lease * 1000),
        allowed_interfaces=frozenset(args.allow_interface) if args.allow_interface else None,
        audit_log=args.audit_log, audit_max_bytes=int(args.audit_max_mb * (1 << 20)), audit_keep=args.audit_keep,
    )
    if args.insecure:
        log.warning("INSECURE: plaintext gRPC on %s, no client authentication: anyone who reaches this port can "
                    "fault this host", args.listen)
    try:
        runtime = AgentRuntime(config, policy)
    except FailedPrecondition as e:  # another agent holds the state dir
        log.error("%s", e)
        return 2
    for line in runtime.pending_undos():
        log.error("NOT UNDONE from an earlier run: %s (kept in the journal; shown in Health)", line)
    signals = Signals()
    tls = None
    if args.tls_dir:
        from faultline.agent.rpc.tls import ServerTls, TlsError

        try:
            tls = ServerTls(args.tls_dir)
        except TlsError as e:
            log.error("--tls-dir: %s", e)
            runtime.close()
            return 2
        log.info("mTLS as %s (names %s), certificate valid until %s", tls.material.subject,
                 ", ".join(tls.material.names) or "none", time.strftime(
                     "%Y-%m-%d", time.gmtime(tls.material.not_after_ns / 1e9)))
    server, port = rpc_server.build(runtime, args.listen, tls)
    if port == 0:
        log.error("cannot listen on %s", args.listen)
        runtime.close()
        return 1
    server.start()
    runtime.start_compiling()
    missing = [f.name for f in runtime.kernel_features if not f.available]
    steps = ", ".join(f"{name} {s:.2f} s" for name, s in runtime.timings)
    log.info("serving on %s (netns %s) %.2f s after start (%s); BPF programs compiling in the background; "
             "missing kernel features: %s", args.listen, args.netns or "-", time.monotonic() - started,
             steps, ", ".join(missing) or "none")
    try:
        signals.serve_until_stopped(lambda: _reload(runtime, policy_path, args.allow_client, tls, log))
    finally:
        log.info("stopping: no new requests; healing every fault")
        stopped = server.stop(grace=1)  # refuses new calls at once; in-flight ones get 1 s
        healed = runtime.close()
        stopped.wait()
        log.info("stopped; healed %d fault(s), journal empty: %s", len(healed), runtime.journal.is_empty())
        if not runtime.compile_finished(COMPILE_JOIN_S):
            # bcc's atexit cleanup would detach, under the compile thread, what it is attaching.
            log.info("a BPF compile is still running: exiting without bcc's exit hooks (the kernel "
                     "closes what it held)")
            logging.shutdown()
            os._exit(0)
    return 0


class Signals:
    """SIGTERM/SIGINT stop the agent, SIGHUP reloads its policy; the main thread acts on them."""

    def __init__(self) -> None:
        self.stop, self.reload, self.wake = threading.Event(), threading.Event(), threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: (self.stop.set(), self.wake.set()))
        signal.signal(signal.SIGHUP, lambda *_: (self.reload.set(), self.wake.set()))

    def serve_until_stopped(self, on_reload: Callable[[], None], poll_s: float = 0.5) -> None:
        """Run `on_reload` for each SIGHUP; return on SIGTERM/SIGINT.

        A bounded wait, not a bare one: CPython runs a signal's handler in the main thread only,
        and a signal the kernel delivers to a gRPC thread does not interrupt a bare wait here, so
        a SIGHUP (or SIGTERM) could wait for the next unrelated wake-up, i.e. forever.
        """
        while not self.stop.is_set():
            self.wake.wait(poll_s)
            self.wake.clear()
            if self.reload.is_set():
                self.reload.clear()
                on_reload()


def _loopback(listen: str) -> bool:
    import ipaddress

    host = listen.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _reload(runtime: AgentRuntime, path: Path | None, allow_client: list[str], tls: ServerTls | None,
            log: logging.Logger) -> None:
    """SIGHUP: read the certificates and the policy file again. A bad file is refused and what is
    in force stays."""
    from faultline.agent.domain import policy as policies
    from faultline.agent.rpc.tls import TlsError

    if tls is not None:
        try:
            m = tls.reload()
            log.info("SIGHUP: certificates reloaded from %s: %s, valid until %s (new connections use them)",
                     tls.dir, m.subject, time.strftime("%Y-%m-%d", time.gmtime(m.not_after_ns / 1e9)))
        except TlsError as e:
            log.error("SIGHUP: certificates NOT reloaded, the ones in force stay: %s", e)
    if path is None:
        log.warning("SIGHUP: no policy file to reload (built-in defaults stay)")
        return
    from faultline.agent.domain import trust
    from faultline.agent.domain.errors import FailedPrecondition

    try:
        trust.file(path, "policy")
    except FailedPrecondition as e:  # someone else could write it: its restart commands would run as root
        log.error("SIGHUP: policy NOT reloaded, the one in force stays: %s", e)
        return
    try:
        new = policies.load(path)
    except policies.PolicyError as e:
        log.error("SIGHUP: policy NOT reloaded, the one in force stays: %s", e)
        return
    new = dataclasses.replace(new, allowed_clients=new.allowed_clients | set(allow_client))
    runtime.reload_policy(new)
    log.info("SIGHUP: policy reloaded from %s (restart commands: %s)", path,
             ", ".join(sorted(new.restart_commands)) or "none")


def cleanup(args: argparse.Namespace) -> int:
    """Exit 0 when nothing is left; 1 (saying what) when something could not be undone."""
    from faultline.agent.domain import trust
    from faultline.agent.domain.errors import FaultlineError
    from faultline.agent.recovery import cleanup as do_cleanup

    if not os.path.lexists(args.state_dir):
        print(f"journal empty: nothing to undo (no state dir {args.state_dir})")
        return 0
    try:
        trust.directory(args.state_dir, "state dir")
        report, empty = do_cleanup(args.state_dir)
    except FaultlineError as e:
        print(f"faultline-agent cleanup: {e}", file=sys.stderr)
        return 1
    for line in report.done:
        print(line)
    for line in report.failed:
        print(f"NOT UNDONE: {line} (kept in the journal; run cleanup again once fixed)")
    return 0 if empty else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr,
    )
    if args.command == "serve":
        return serve(args)
    if args.command == "reload":
        return reload(args)
    return cleanup(args)


if __name__ == "__main__":
    sys.exit(main())
