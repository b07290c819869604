"""The agent's policy (/etc/faultline/agent.yaml): what this host lets anyone fault at all.

Checked after a request is well formed and before anything touches the kernel; a request
outside it is PERMISSION_DENIED naming the rule. Without a file the built-in defaults
apply (any interface but lo, any peer, the agent's limits) and the agent says so at start;
`make install` writes a conservative file.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faultline.agent.domain import subjects
from faultline.agent.domain.errors import PermissionDenied
from faultline.agent.domain.spec import HOST_KINDS, FaultKind, FaultSpec, Network, ProcessAction, TargetBy

DEFAULT_PATH = Path("/etc/faultline/agent.yaml")


class PolicyError(ValueError):
    """The policy file itself is malformed: the agent refuses to start."""


@dataclass(frozen=True)
class RestartCommand:
    """A command the host's owner lets a KILL/STOP fault run at heal: an argv (no shell), as `user`."""

    argv: tuple[str, ...]
    user: str = "nobody"


@dataclass(frozen=True)
class Policy:
    interfaces: frozenset[str] | None = None       # None: any (but lo)
    peer_cidrs: tuple[Network, ...] | None = None  # None: any; else every fault's peers must lie inside
    max_lease_s: float = 3600.0
    max_loss_percent: float = 100.0
    max_delay_ms: float = 60_000.0
    allow_process_faults: bool = False
    allowed_clients: frozenset[str] = field(default_factory=frozenset)  # certificate subjects, e.g. CN=qa
    # PROCESS faults: what a request may name. A request never carries a command line.
    restart_commands: dict[str, RestartCommand] = field(default_factory=dict)
    units: frozenset[str] = frozenset()    # systemd units that may be targeted or restarted
    cgroups: tuple[str, ...] = ()          # cgroup subtrees (below /sys/fs/cgroup) that may be targeted
    max_processes: int = 8                 # processes one PROCESS fault may reach
    min_rate_bps: int = 0                  # slowest RATE allowed (8 bit/s is a disconnect by another name)
    source: str = "built-in defaults"

    def check(self, spec: FaultSpec) -> None:
        sel = spec.selector
        if spec.kind is FaultKind.PROCESS and not self.allow_process_faults:
            raise PermissionDenied("allow_process_faults",
                                   f"PROCESS faults are off on this host ({self.source} does not allow them)")
        if self.interfaces is not None and spec.kind not in HOST_KINDS and sel.interface not in self.interfaces:
            allowed = ", ".join(sorted(self.interfaces)) or "none"
            raise PermissionDenied("interfaces", f"{sel.interface!r} may not be faulted here (allowed: {allowed})")
        if self.peer_cidrs is not None and spec.kind is not FaultKind.PROCESS:
            allowed = ", ".join(str(n) for n in self.peer_cidrs) or "none"
            if not sel.peers:
                raise PermissionDenied("peer_cidrs", f"a fault must name peers inside {allowed}")
            for p in sel.peers:
                if not any(p.version == n.version and p.subnet_of(n) for n in self.peer_cidrs):  # type: ignore[arg-type]
                    raise PermissionDenied("peer_cidrs", f"{p} is not inside {allowed}")
        if spec.process is not None:
            self._check_process(spec)
        if spec.lease_ms > self.max_lease_s * 1000:
            raise PermissionDenied("max_lease_s", f"lease {spec.lease_ms / 1000:g} s is over {self.max_lease_s:g} s")
        # The effect, not the field: every way of losing packets counts against max_loss_percent.
        n = spec.netem
        for what, percent in (("loss", spec.loss_percent), ("loss", n.loss if n else 0.0),
                              ("Gilbert-Elliott loss (stationary rate)",
                               n.gilbert_elliott.expected_loss() if n and n.gilbert_elliott else 0.0),
                              ("corrupt", n.corrupt if n else 0.0), ("duplicate", n.duplicate if n else 0.0)):
            if percent > self.max_loss_percent:
                raise PermissionDenied("max_loss_percent",
                                       f"{what} {percent:g} % is over {self.max_loss_percent:g} %")
        if n and (n.delay_ns + n.jitter_ns) / 1e6 > self.max_delay_ms:
            raise PermissionDenied("max_delay_ms", f"delay {n.delay_ns / 1e6:g} ms + jitter {n.jitter_ns / 1e6:g} ms "
                                                   f"is over {self.max_delay_ms:g} ms")
        if n and spec.kind is FaultKind.RATE and n.rate_bps < self.min_rate_bps:
            raise PermissionDenied("min_rate_bps", f"rate {n.rate_bps} bit/s is under {self.min_rate_bps} bit/s")

    def _check_process(self, spec: FaultSpec) -> None:
        p = spec.process
        assert p is not None
        if p.restart and p.restart not in self.restart_commands:
            allowed = ", ".join(sorted(self.restart_commands)) or "none"
            raise PermissionDenied("restart_commands", f"{p.restart!r} is not one of this host's restart commands "
                                                       f"(allowed: {allowed})")
        if (p.by is TargetBy.UNIT or p.action is ProcessAction.RESTART_UNIT) and p.value not in self.units:
            allowed = ", ".join(sorted(self.units)) or "none"
            raise PermissionDenied("units", f"unit {p.value!r} may not be targeted here (allowed: {allowed})")
        if p.by is TargetBy.CGROUP and not any(p.value == c or p.value.startswith(c.rstrip("/") + "/")
                                               for c in self.cgroups):
            allowed = ", ".join(self.cgroups) or "none"
            raise PermissionDenied("cgroups", f"cgroup {p.value!r} is outside this host's cgroups (allowed: {allowed})")

    def allows_client(self, subject: frozenset[subjects.Attribute]) -> bool:
        """A certificate subject (parsed) that one allowed_clients entry admits, attribute by attribute."""
        return any(subjects.admits(subjects.parse(entry), subject) for entry in self.allowed_clients)


def check_clients(where: object, entries: list[str]) -> frozenset[str]:
    """allowed_clients entries, each an RFC 4514 name (PolicyError naming the one that is not)."""
    for entry in entries:
        try:
            subjects.parse(entry)
        except ValueError as e:
            raise PolicyError(f"{where}: allowed_clients: {e}") from None
    return frozenset(entries)


FIELDS: dict[str, Any] = {
    "interfaces": list, "peer_cidrs": list, "max_lease_s": (int, float), "max_loss_percent": (int, float),
    "max_delay_ms": (int, float), "allow_process_faults": bool, "allowed_clients": list,
    "restart_commands": dict, "units": list, "cgroups": list, "max_processes": int, "min_rate_bps": int,
}
NAMES = {list: "a list", (int, float): "a number", bool: "true or false", dict: "a mapping", int: "an integer"}
RESTART_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _restart_commands(path: Path, raw: dict[str, Any]) -> dict[str, RestartCommand]:
    """name: [argv...]  or  name: {argv: [...], user: NAME}; argv[0] an absolute path."""
    out = {}
    for name, value in raw.items():
        where = f"{path}: restart_commands: {name}"
        if not (isinstance(name, str) and 1 <= len(name) <= 64 and set(name) <= RESTART_NAME_CHARS):
            raise PolicyError(f"{where}: a name of 1 to 64 of A-Z a-z 0-9 . _ -")
        spec = value if isinstance(value, dict) else {"argv": value}
        argv, user = spec.get("argv"), spec.get("user", "nobody")
        if set(spec) - {"argv", "user"}:
            raise PolicyError(f"{where}: keys argv and user only; got {sorted(spec)}")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str | int) for a in argv)
                and str(argv[0]).startswith("/")):
            raise PolicyError(f"{where}: an argv list whose first item is an absolute path; got {argv!r}")
        if not isinstance(user, str) or not user:
            raise PolicyError(f"{where}: user: a user name; got {user!r}")
        out[name] = RestartCommand(tuple(str(a) for a in argv), user)
    return out


def load(path: Path) -> Policy:
    """Every key checked; a mistake names the file and the key."""
    try:
        data = path.read_bytes()
        raw: Any = yaml.safe_load(data) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"{path}: {e}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: a mapping with keys {', '.join(FIELDS)}")
    for key, value in raw.items():
        if key not in FIELDS:
            raise PolicyError(f"{path}: {key}: not a known key; allowed: {', '.join(FIELDS)}")
        if not isinstance(value, FIELDS[key]) or (FIELDS[key] is not bool and isinstance(value, bool)):
            raise PolicyError(f"{path}: {key}: {NAMES[FIELDS[key]]}; got {value!r}")
    for key, low, high in (("max_lease_s", 0.1, 86_400), ("max_loss_percent", 0, 100), ("max_delay_ms", 0, 60_000),
                           ("max_processes", 1, 1000), ("min_rate_bps", 0, 10**12)):
        if key in raw and not low <= raw[key] <= high:
            raise PolicyError(f"{path}: {key}: {low:g} to {high:g}; got {raw[key]!r}")
    try:
        cidrs = tuple(ipaddress.ip_network(str(c), strict=False) for c in raw["peer_cidrs"]) \
            if "peer_cidrs" in raw else None
    except ValueError as e:
        raise PolicyError(f"{path}: peer_cidrs: {e}") from None
    return Policy(
        interfaces=frozenset(str(i) for i in raw["interfaces"]) if "interfaces" in raw else None,
        peer_cidrs=cidrs,
        max_lease_s=float(raw.get("max_lease_s", 3600.0)),
        max_loss_percent=float(raw.get("max_loss_percent", 100.0)),
        max_delay_ms=float(raw.get("max_delay_ms", 60_000.0)),
        allow_process_faults=bool(raw.get("allow_process_faults", False)),
        allowed_clients=check_clients(path, [str(c) for c in raw.get("allowed_clients", [])]),
        restart_commands=_restart_commands(path, raw.get("restart_commands", {})),
        units=frozenset(str(u) for u in raw.get("units", [])),
        cgroups=tuple(str(c).strip("/") for c in raw.get("cgroups", [])),
        max_processes=int(raw.get("max_processes", 8)),
        min_rate_bps=int(raw.get("min_rate_bps", 0)),
        # The file's hash names the policy in force (Capabilities): a reload is seen to have happened.
        source=f"{path} (sha256 {hashlib.sha256(data).hexdigest()[:16]})",
    )
