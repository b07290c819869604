"""The lab: trading "hosts" as network namespaces on one bridge, one agent in each.

Everything the lab makes is written to its record (lab.json) *before* it is made, so
`down` removes exactly what `up` made - including after a crash half-way through `up` -
and nothing else. Names carry the lab's prefix (fl-trader, fl-br0) so they are
recognisable in `ip netns` / `ip link`.

Secure by default: the bridge's address in the root namespace reaches every lab agent, so
any local user could. Each lab makes its own CA and certificates (keys root-only); its
agents speak mTLS, admit only the lab's controller certificate, and listen on their lab
address only. The lab registers its subnets in /run/faultline-labs, so the controller,
runner, plugin and benchmarks use its certificates without being told.

Over 300 lines: namespaces, bridge, the lab CA, agents and their policies share one
up/down/state lifecycle; policies and certificates are the next to move out.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from faultline.controller.agents.client import LAB_INDEX, AgentClient, AgentError
from faultline.controller.env.programs import require

IFA_F_NODAD = 0x02
AGENT_PORT = 7070
LAB_CONTROLLER = "faultline-lab-controller"  # the one client subject a lab's agents admit
HOST_IFNAME = "lab0"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")


def _replace_policy(policy: Path, data: bytes) -> str:
    """Write a lab agent's policy file atomically (the agent may read it at any moment);
    returns its sha256 prefix, as the agent reports it."""
    tmp = policy.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)  # the agent refuses a policy others may write, whatever this process's umask
    tmp.replace(policy)
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class LabConfig:
    prefix: str = "fl"
    subnet4: str = "10.77.0.0/24"
    subnet6: str = "fd77::/64"
    run_dir: Path = Path("/run/faultline-lab")
    # An agent serves before it compiles its BPF programs: measured 1.0 s here, 15.5 s (one) and
    # 33.9 s (four at once) under TCG (bench/footprint.py).
    ready_timeout_s: float = 60.0

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br0"

    def gateway(self) -> tuple[str, str]:
        """The bridge's (controller's) addresses: the last host number of each subnet."""
        return str(ipaddress.ip_network(self.subnet4)[254]), str(ipaddress.ip_network(self.subnet6)[0xFE])


@dataclass
class LabHost:
    name: str
    netns: str
    veth: str          # root-namespace end, on the bridge
    interface: str     # inside the host's namespace
    ipv4: str
    ipv6: str
    agent: str         # host:port of its agent
    state_dir: str
    log: str
    pid: int = 0
    with_agent: bool = True
    clock_skew_ms: float = 0.0  # lab-only agent option: its realtime reported this far off
    # Its policy's restart commands (name -> argv), set by a scenario for its processes.
    restart_commands: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LabState:
    prefix: str
    bridge: str
    bridge_created: bool = False
    hosts: dict[str, LabHost] = field(default_factory=dict)

    def host(self, name: str) -> LabHost:
        return self.hosts[name]


class Lab:
    def __init__(self, config: LabConfig = LabConfig(), progress: Callable[[str], None] = lambda _: None) -> None:
        self.config = config
        self.record = config.run_dir / f"{config.prefix}-lab.json"
        self.tls_dir = config.run_dir / f"{config.prefix}-tls"
        self.index = LAB_INDEX / f"{config.prefix}.json"
        self.progress = progress

    def _certificates(self) -> None:
        """The lab's CA, agent and controller certificates (once per lab), and its index entry."""
        if not (self.tls_dir / "ca.pem").exists():
            from faultline.controller.env import certs
            self.config.run_dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.tls_dir, ignore_errors=True)  # a half-made one
            self.tls_dir.mkdir(mode=0o700)
            certs.init(self.tls_dir, [], controller_name=LAB_CONTROLLER, ca_name=f"faultline lab {self.config.prefix}")
            self.progress(f"lab certificates in {self.tls_dir} (mTLS; keys readable by root only)")
        LAB_INDEX.mkdir(parents=True, exist_ok=True)
        entry = {"subnet4": self.config.subnet4, "subnet6": self.config.subnet6, "tls_dir": str(self.tls_dir),
                 "record": str(self.record)}
        tmp = self.index.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(self.index)

    # -- record ----------------------------------------------------------
    def load(self) -> LabState | None:
        if not self.record.exists():
            return None
        raw = json.loads(self.record.read_text())
        hosts = {k: LabHost(**v) for k, v in raw.pop("hosts").items()}
        return LabState(**raw, hosts=hosts)

    def _save(self, state: LabState) -> None:
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(asdict(state), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.record)

    # -- up --------------------------------------------------------------
    def up(self, names: Sequence[str], timeout_s: float | None = None, agents: Sequence[str] | None = None,
           clock_skew_ms: Mapping[str, float] | None = None, programs: bool = True) -> LabState:
        """Make the hosts; start an agent on each (or only on `agents`); wait until they serve and,
        with `programs`, until their BPF programs are compiled (every fault and watch works at once)."""
        for n in names:
            if not NAME_RE.match(n):
                raise ValueError(f"host name {n!r}: 1-10 lowercase letters/digits, starting with a letter")
        if len(set(names)) != len(names) or not 1 <= len(names) <= 200:
            raise ValueError("host names must be distinct, 1 to 200 of them")
        state = self.load() or LabState(self.config.prefix, self.config.bridge)
        self._save(state)  # recorded before the certificates and the index entry are made
        self._certificates()
        with IPRoute() as ipr:
            self._bridge(ipr, state)
            net4, net6 = ipaddress.ip_network(self.config.subnet4), ipaddress.ip_network(self.config.subnet6)
            for name in names:
                if name in state.hosts:
                    continue
                i = len(state.hosts) + 1
                run = self.config.run_dir / f"{self.config.prefix}-{name}"
                host = LabHost(
                    name=name, netns=f"{self.config.prefix}-{name}", veth=f"{self.config.prefix}-{name}"[:15],
                    interface=HOST_IFNAME, ipv4=str(net4[i]), ipv6=str(net6[i]),
                    agent=f"{net4[i]}:{AGENT_PORT}", state_dir=str(run / "state"), log=str(run / "agent.log"),
                    with_agent=agents is None or name in agents,
                    clock_skew_ms=(clock_skew_ms or {}).get(name, 0.0),
                )
                state.hosts[name] = host
                self._save(state)  # recorded before it is made
                self.progress(f"host {name}: namespace {host.netns}, {host.ipv4} / {host.ipv6}")
                self._host(ipr, state, host)
        for host in state.hosts.values():
            if host.with_agent and not agent_alive(host):
                self._start_agent(host)
                self._save(state)
        t0 = time.monotonic()
        self._wait_ready(state, timeout_s or self.config.ready_timeout_s)
        self.progress(f"agents serving after {time.monotonic() - t0:.1f} s")
        if programs:
            t0 = time.monotonic()
            self.wait_programs(state.hosts.values())
            self.progress(f"agents' BPF programs compiled after {time.monotonic() - t0:.1f} s more")
        return state

    def wait_programs(self, hosts: Iterable[LabHost], timeout_s: float | None = None) -> None:
        """Wait until every agent's BPF programs are compiled (they compile behind a serving agent).

        The deadline comes from the measured compile time (one program: ~1 s here, ~35 s under
        TCG), the number compiling at once and the CPUs, times three for a loaded machine.
        """
        hosts = [h for h in hosts if h.with_agent]
        timeout_s = timeout_s or programs_deadline_s(len(hosts))
        deadline = time.monotonic() + timeout_s
        for host in hosts:
            with AgentClient(host.agent) as c:
                while True:
                    h = c.health(timeout_s=5.0)
                    pending = [p for p in h.programs if p.state not in ("ready", "failed")]
                    if not pending:
                        for p in h.programs:
                            if p.state == "failed":
                                self.progress(f"host {host.name}: {p.name} did not compile: {p.error}")
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"agent of {host.name}: " + ", ".join(f"{p.name} {p.state} for {p.seconds:.0f} s"
                                                                   for p in pending)
                            + f" after {timeout_s:.0f} s (deadline for {len(hosts)} agents on {os.cpu_count()} "
                            f"CPUs); see {host.log}")
                    time.sleep(0.2)

    def _bridge(self, ipr: IPRoute, state: LabState) -> None:
        if ipr.link_lookup(ifname=state.bridge):
            return
        state.bridge_created = True
        self._save(state)
        ipr.link("add", ifname=state.bridge, kind="bridge")
        idx = ipr.link_lookup(ifname=state.bridge)[0]
        gw4, gw6 = self.config.gateway()
        ipr.addr("add", index=idx, address=gw4, prefixlen=ipaddress.ip_network(self.config.subnet4).prefixlen)
        ipr.addr("add", index=idx, address=gw6, prefixlen=ipaddress.ip_network(self.config.subnet6).prefixlen,
                 flags=IFA_F_NODAD)
        ipr.link("set", index=idx, state="up")

    def _host(self, ipr: IPRoute, state: LabState, host: LabHost) -> None:
        if host.netns not in netns.listnetns():
            netns.create(host.netns)
        if not ipr.link_lookup(ifname=host.veth):
            ipr.link("add", ifname=host.veth, kind="veth", peer={"ifname": host.interface, "net_ns_fd": host.netns})
        idx = ipr.link_lookup(ifname=host.veth)[0]
        br = ipr.link_lookup(ifname=state.bridge)[0]
        ipr.link("set", index=idx, master=br, state="up")
        n4 = ipaddress.ip_network(self.config.subnet4).prefixlen
        n6 = ipaddress.ip_network(self.config.subnet6).prefixlen
        # The hosts share one L2 segment with the bridge: no routes needed.
        # One skb per wire packet, so a fault's counters and netem's per-packet draws mean
        # packets (with TSO/GSO one "lost" skb is dozens of segments).
        _no_offloads([host.veth])
        _no_offloads(["ip", "netns", "exec", host.netns, host.interface])
        with IPRoute(netns=host.netns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
            i = nsr.link_lookup(ifname=host.interface)[0]
            nsr.link("set", index=i, state="up")
            for addr, plen, flags in ((host.ipv4, n4, 0), (host.ipv6, n6, IFA_F_NODAD)):
                try:
                    nsr.addr("add", index=i, address=addr, prefixlen=plen, flags=flags)
                except NetlinkError as e:
                    if e.code != 17:  # EEXIST: up again after a partial run
                        raise

    def replug(self, name: str) -> None:
        """The host's link vanishes and a new one takes its place (a NIC replaced, a VM's interface
        re-created): same names and addresses, a new device (new ifindex, no qdiscs or filters)."""
        state = self.load()
        if state is None:
            raise RuntimeError("no lab is up")
        host = state.hosts[name]
        with IPRoute() as ipr:
            for idx in ipr.link_lookup(ifname=host.veth):
                _delete_link(ipr, idx)  # takes its peer, the host's interface, with it
            self._host(ipr, state, host)

    def _write_policy(self, host: LabHost) -> str | None:
        """An explicit policy, so that a host's /etc/faultline/agent.yaml never applies to the lab:
        its own interface only; process faults on its own namespace's processes (the agent checks),
        restarting only the commands a scenario's processes were started with (as root, like them).
        Returns the new file's sha256 prefix (as the agent reports it), None if nothing changed."""
        policy = Path(host.log).parent / "policy.yaml"
        body = {"interfaces": [host.interface], "allow_process_faults": True,
                "restart_commands": {n: {"argv": argv, "user": "root"} for n, argv in host.restart_commands.items()}}
        data = (f"# lab host {host.name}, written by the lab\n" + yaml.safe_dump(body, sort_keys=True)).encode()
        if policy.exists() and policy.read_bytes() == data:
            return None
        return _replace_policy(policy, data)

    def set_restart_commands(self, name: str, commands: Mapping[str, Sequence[str]],
                             timeout_s: float = 15.0) -> None:
        """Make `commands` the host's restart commands: its policy file is rewritten and the agent
        reloads it (SIGHUP); returns once the agent reports the new file's hash. Unchanged: nothing."""
        state = self.load()
        if state is None:
            raise RuntimeError("no lab is up")
        host = state.hosts[name]
        host.restart_commands = {n: list(a) for n, a in commands.items()}
        self._save(state)
        digest = self._write_policy(host)
        if digest is not None:
            self._reload(host, digest, timeout_s)

    def use_policy(self, name: str, text: str | None, timeout_s: float = 15.0) -> None:
        """Give host `name`'s agent the policy `text` (a test's tight one), or the lab's own back
        when None; returns once the agent reports the new file's hash."""
        state = self.load()
        if state is None:
            raise RuntimeError("no lab is up")
        host = state.hosts[name]
        if text is None:
            digest = self._write_policy(host)
        else:
            digest = _replace_policy(Path(host.log).parent / "policy.yaml", text.encode())
        if digest is not None:
            self._reload(host, digest, timeout_s)

    def _reload(self, host: LabHost, digest: str, timeout_s: float) -> None:
        name = host.name
        os.kill(host.pid, signal.SIGHUP)
        want = f"(sha256 {digest})"  # names the same argv under a new run dir: the names alone would not say
        deadline = time.monotonic() + timeout_s
        with AgentClient(host.agent) as c:
            while True:
                feats = {f.name: f.reason for f in c.capabilities().features}
                if want in feats.get("process_faults", ""):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"agent of {name} did not take its new policy in {timeout_s:.0f} s "
                                       f"(it says: {feats.get('process_faults')}); see {host.log}")
                time.sleep(0.05)

    def _start_agent(self, host: LabHost) -> None:
        Path(host.log).parent.mkdir(parents=True, exist_ok=True)
        for d in (self.config.run_dir, Path(host.log).parent):
            d.chmod(0o755)  # the agent refuses a state dir others may write to (a umask of 002 would)
        policy = Path(host.log).parent / "policy.yaml"
        if not policy.exists():  # an edited one (a test's tight policy) is kept across agent restarts
            self._write_policy(host)
        with open(host.log, "ab") as log:
            proc = subprocess.Popen(self.agent_argv(host), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        host.pid = proc.pid
        self.progress(f"host {host.name}: agent pid {proc.pid} on {host.agent}, log {host.log}")

    def agent_argv(self, host: LabHost, state_dir: str = "", extra: Sequence[str] = ()) -> list[str]:
        """How the lab runs a host's agent (state_dir, extra: for a test's own agent there)."""
        policy = Path(host.log).parent / "policy.yaml"
        return [sys.executable, "-m", "faultline.agent.cli", "serve", "--netns", host.netns,
                "--listen", host.agent, "--state-dir", state_dir or host.state_dir,
                "--allow-interface", host.interface, "--policy", str(policy),
                "--tls-dir", str(self.tls_dir), "--allow-client", f"CN={LAB_CONTROLLER}",
                *(["--clock-skew-ms", str(host.clock_skew_ms)] if host.clock_skew_ms else []), *extra]

    def _wait_ready(self, state: LabState, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for host in state.hosts.values():
            if not host.with_agent:
                continue
            with AgentClient(host.agent) as c:
                while True:
                    try:
                        c.health(timeout_s=1.0)
                        break
                    except AgentError:
                        if not agent_alive(host):
                            raise RuntimeError(f"agent of {host.name} exited; see {host.log}") from None
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"agent of {host.name} not serving after {timeout_s:.0f}s; "
                                               f"its log ends: {_last_line(host.log)}; see {host.log}") from None
                        time.sleep(0.2)
            self.progress(f"host {host.name}: agent ready")

    def restart_agent(self, name: str, programs: bool = True) -> LabHost:
        """Start a host's agent again (after a crash); it recovers from its journal."""
        state = self.load()
        if state is None:
            raise RuntimeError("no lab is up")
        host = state.hosts[name]
        self._start_agent(host)
        self._save(state)
        self._wait_ready(LabState(state.prefix, state.bridge, hosts={name: host}), self.config.ready_timeout_s)
        if programs:
            self.wait_programs([host])
        return host

    # -- down ------------------------------------------------------------
    def down(self) -> list[str]:
        state = self.load()
        if state is None:
            self.index.unlink(missing_ok=True)
            shutil.rmtree(self.tls_dir, ignore_errors=True)
            return ["no lab recorded: nothing to remove"]
        done = []
        for host in state.hosts.values():
            done.append(_stop_agent(host))
            r = subprocess.run([sys.executable, "-m", "faultline.agent.cli", "cleanup", "--state-dir", host.state_dir],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                done.append(f"{host.name}: cleanup reported: {(r.stdout + r.stderr).strip()}")
        for host in state.hosts.values():
            if n := _stop_processes_in(host.netns):
                done.append(f"{host.name}: stopped {n} process(es) still in {host.netns} (e.g. restarted by a fault)")
        with IPRoute() as ipr:
            for host in state.hosts.values():
                if host.netns in netns.listnetns():
                    netns.remove(host.netns)  # takes the veth end inside it, and so the pair
                    done.append(f"removed namespace {host.netns}")
                for idx in ipr.link_lookup(ifname=host.veth):
                    _delete_link(ipr, idx)  # usually already gone with its peer
                shutil.rmtree(Path(host.state_dir).parent, ignore_errors=True)
            if state.bridge_created:
                for idx in ipr.link_lookup(ifname=state.bridge):
                    _delete_link(ipr, idx)
                    done.append(f"removed bridge {state.bridge}")
        self.index.unlink(missing_ok=True)
        shutil.rmtree(self.tls_dir, ignore_errors=True)
        self.record.unlink(missing_ok=True)
        try:
            LAB_INDEX.rmdir()  # only if no other lab is up
        except OSError:
            pass
        try:
            self.config.run_dir.rmdir()  # only if no other lab lives there
        except OSError:
            pass
        return done

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` inside the host's namespace."""
        return [sys.executable, "-m", "faultline.controller.env.nsexec", f"{self.config.prefix}-{host}", "--", *argv]


def _stop_processes_in(ns: str, grace_s: float = 2.0) -> int:
    """SIGTERM, then SIGKILL, every process in the lab's namespace `ns` (the lab made it: all
    in it is the lab's). Deleting a namespace does not end its processes."""
    try:
        ino = os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return 0

    def inside() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.stat(entry / "ns" / "net").st_ino == ino:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    found = inside()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in inside():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a paused one cannot act on SIGTERM
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while inside() and time.monotonic() < deadline:
            time.sleep(0.05)
    return len(found)


def compile_seconds() -> float:
    """One bcc compile, as measured: ~1 s on this machine kind, ~35 s under TCG (QEMU's CPU)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return 40.0 if "QEMU" in cpuinfo else 3.0


def programs_deadline_s(agents: int) -> float:
    """Agents compile two programs each, all at once, sharing the CPUs; 3x that for a loaded machine."""
    return max(60.0, 3 * agents * 2 * compile_seconds() / max(1, os.cpu_count() or 1))


def _last_line(path: str) -> str:
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty)"


def _no_offloads(where: list[str]) -> None:
    """ethtool -K DEV tso off gso off gro off; `where` is [DEV] or an `ip netns exec NS DEV` prefix."""
    *prefix, dev = where
    require("ethtool")  # a one-line error naming its package, not ENOENT from inside `ip netns exec`
    cmd = [*prefix, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()}")


def _delete_link(ipr: IPRoute, index: int) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as e:
        if e.code != 19:  # ENODEV: removed meanwhile
            raise


def agent_alive(host: LabHost) -> bool:
    if not host.pid:
        return False
    try:
        cmdline = Path(f"/proc/{host.pid}/cmdline").read_bytes()
    except OSError:
        return False
    # The pid may have been reused: it is ours only if it serves this host's state dir.
    return b"faultline.agent.cli" in cmdline and host.state_dir.encode() in cmdline


def _stop_agent(host: LabHost, timeout_s: float = 10.0) -> str:
    if not agent_alive(host):
        return f"{host.name}: agent not running"
    os.kill(host.pid, signal.SIGTERM)  # it heals every fault before it exits
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(host.pid, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if not agent_alive(host) or pid:
            return f"{host.name}: agent stopped"
        time.sleep(0.05)
    os.kill(host.pid, signal.SIGKILL)
    return f"{host.name}: agent killed after {timeout_s:.0f}s; its journal is reverted by cleanup"
