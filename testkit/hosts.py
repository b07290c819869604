"""Hosts of a user's own, not the lab: network namespaces on a bridge of their own, each agent
started as the shipped systemd unit starts it (`faultline-agent serve --listen 0.0.0.0:7070
--state-dir --tls-dir --policy`, here under `ip netns exec`), each with its own certificate from
`faultline certs issue-agent` under one CA kept by the controller. Nothing of the lab is used:
no lab record, no lab CA, no subnet the client recognises."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.env import certs
from testkit.netns import wait_until

BIN = Path(sys.executable).parent
CONTROLLER_CN = "qa"
POLICY = """\
interfaces: [eth1]
peer_cidrs: [{subnet}.0/24]
max_lease_s: 300
allowed_clients: [CN={cn}]
"""


@dataclass
class OwnHost:
    name: str
    netns: str
    ip: str
    dir: Path
    interface: str = "eth1"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def agent(self) -> str:
        return f"{self.ip}:7070"

    @property
    def tls(self) -> Path:
        return self.dir / "tls"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def log(self) -> Path:
        return self.dir / "agent.log"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


class OwnHosts:
    def __init__(self, root: Path, names: Sequence[str] = ("app1", "db1"), prefix: str = "flo",
                 subnet: str = "10.81.0") -> None:
        self.root, self.prefix, self.subnet = root, prefix, subnet
        self.ca = root / "controller-ca"  # the controller's: ca-key.pem, controller.pem (CN=qa)
        self.bridge = f"{prefix}-br0"
        self.hosts = {n: OwnHost(n, f"{prefix}-{n}", f"{subnet}.{i + 1}", root / n) for i, n in enumerate(names)}

    def __getitem__(self, name: str) -> OwnHost:
        return self.hosts[name]

    def up(self) -> OwnHosts:
        self.down()
        shutil.rmtree(self.ca, ignore_errors=True)
        certs.init(self.ca, [], controller_name=CONTROLLER_CN)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, h in enumerate(self.hosts.values()):
            h.dir.mkdir(parents=True, exist_ok=True)
            certs.issue_agent(self.ca, h.name, [h.ip], [], h.tls)
            (h.dir / "policy.yaml").write_text(POLICY.format(subnet=self.subnet, cn=CONTROLLER_CN))
            veth = f"{self.prefix}-v{i}"
            _ip("netns", "add", h.netns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", h.interface, "netns", h.netns)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", h.netns, "addr", "add", f"{h.ip}/24", "dev", h.interface)
            _ip("-n", h.netns, "link", "set", h.interface, "up")
            _ip("-n", h.netns, "link", "set", "lo", "up")
            self.start_agent(h.name)
        for h in self.hosts.values():
            self.wait_serving(h.name)
        return self

    def client(self, name: str, timeout_s: float = 10.0) -> AgentClient:
        return AgentClient(self.hosts[name].agent, timeout_s=timeout_s, tls_dir=self.ca)

    def start_agent(self, name: str, wrap: Sequence[str] = ()) -> None:
        """Start its agent under `ip netns exec` (and `wrap`, e.g. an unshare that hides tracefs)."""
        h = self.hosts[name]
        argv = ["ip", "netns", "exec", h.netns, *wrap, str(BIN / "faultline-agent"), "serve",
                "--listen", "0.0.0.0:7070", "--state-dir", str(h.state_dir), "--tls-dir", str(h.tls),
                "--policy", str(h.dir / "policy.yaml")]
        with open(h.log, "ab") as log:
            h.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def wait_serving(self, name: str, programs: bool = True, timeout_s: float = 120.0) -> None:
        """Answering, and (programs) its BPF programs built or failed: Health is final then."""
        def done() -> bool:
            try:
                with self.client(name, timeout_s=3) as c:
                    h = c.health(timeout_s=3)
            except AgentError:
                return False
            return not programs or all(p.state in ("ready", "failed") for p in h.programs)
        wait_until(done, timeout_s, f"the agent of {name} ({self.hosts[name].log})", every_s=0.2)

    def stop_agent(self, name: str, sig: int = signal.SIGTERM) -> None:
        h = self.hosts[name]
        if h.proc is not None and h.proc.poll() is None:
            h.proc.send_signal(sig)
            h.proc.wait(timeout=30)
        h.proc = None

    def down(self) -> None:
        for i, h in enumerate(self.hosts.values()):
            self.stop_agent(h.name)
            # The veth first: a namespace outlives its name while the kernel still holds sockets of
            # it (orphaned TCP connections retrying through a partition), and so would its link.
            subprocess.run(["ip", "link", "del", f"{self.prefix}-v{i}"], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", h.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


SSHD_CONFIG = """\
ListenAddress {ip}:22
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
"""


class Sshd:
    """A real OpenSSH server in each own host's namespace (keys and config of its own, nothing of
    the machine's), and the client config a controller uses to reach them (`--ssh-config`)."""

    def __init__(self, hosts: OwnHosts) -> None:
        self.hosts, self.dir = hosts, hosts.root / "ssh"
        self.procs: list[subprocess.Popen] = []
        self.client_config = self.dir / "client_config"

    def target(self, name: str) -> str:
        return f"root@{self.hosts[name].ip}"

    def up(self) -> Sshd:
        self.dir.mkdir(parents=True, exist_ok=True)
        key = self.dir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        for h in self.hosts.hosts.values():
            d = self.dir / h.name
            d.mkdir(exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
            shutil.copy(key.with_suffix(".pub"), d / "authorized_keys")
            (d / "sshd_config").write_text(SSHD_CONFIG.format(ip=h.ip, dir=d))
            self.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", h.netns, shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e",
                 "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "ab"),
                start_new_session=True))
        self.client_config.write_text(
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {self.dir}/known_hosts\n"
            "  StrictHostKeyChecking accept-new\n  ConnectTimeout 5\n")
        for name in self.hosts.hosts:
            wait_until(lambda n=name: subprocess.run(
                ["ssh", "-F", str(self.client_config), "-o", "BatchMode=yes", self.target(n), "true"],
                capture_output=True, timeout=15, check=False).returncode == 0, 30, f"sshd on {name}", every_s=0.2)
        return self

    def down(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
        self.procs.clear()
