"""The agent's policy (/etc/faultline/agent.yaml): what this host lets anyone fault at all.

Checked after a request is well formed and before anything touches the kernel; a request
outside it is PERMISSION_DENIED naming the rule. Without a file the built-in defaults
apply (any interface but lo, any peer, the agent's limits) and the agent says so at start;
`make install` writes a conservative file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.domain.errors import PermissionDenied
from agent.domain.spec import HOST_KINDS, FaultKind, FaultSpec, Network

DEFAULT_PATH = Path("/etc/faultline/agent.yaml")


class PolicyError(ValueError):
    """The policy file itself is malformed: the agent refuses to start."""


@dataclass(frozen=True)
class Policy:
    interfaces: frozenset[str] | None = None       # None: any (but lo)
    peer_cidrs: tuple[Network, ...] | None = None  # None: any; else every fault's peers must lie inside
    max_lease_s: float = 3600.0
    max_loss_percent: float = 100.0
    max_delay_ms: float = 60_000.0
    allow_process_faults: bool = False
    allowed_clients: frozenset[str] = field(default_factory=frozenset)  # certificate subjects, e.g. CN=qa
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
        if spec.lease_ms > self.max_lease_s * 1000:
            raise PermissionDenied("max_lease_s", f"lease {spec.lease_ms / 1000:g} s is over {self.max_lease_s:g} s")
        loss = max(spec.loss_percent, spec.netem.loss if spec.netem else 0.0)
        if loss > self.max_loss_percent:
            raise PermissionDenied("max_loss_percent", f"loss {loss:g} % is over {self.max_loss_percent:g} %")
        if spec.netem and spec.netem.delay_ns / 1e6 > self.max_delay_ms:
            raise PermissionDenied("max_delay_ms",
                                   f"delay {spec.netem.delay_ns / 1e6:g} ms is over {self.max_delay_ms:g} ms")

    def allows_client(self, subject: str) -> bool:
        return subject in self.allowed_clients


FIELDS: dict[str, Any] = {
    "interfaces": list, "peer_cidrs": list, "max_lease_s": (int, float), "max_loss_percent": (int, float),
    "max_delay_ms": (int, float), "allow_process_faults": bool, "allowed_clients": list,
}
NAMES = {list: "a list", (int, float): "a number", bool: "true or false"}


def load(path: Path) -> Policy:
    """Every key checked; a mistake names the file and the key."""
    try:
        raw: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"{path}: {e}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: a mapping with keys {', '.join(FIELDS)}")
    for key, value in raw.items():
        if key not in FIELDS:
            raise PolicyError(f"{path}: {key}: not a known key; allowed: {', '.join(FIELDS)}")
        if not isinstance(value, FIELDS[key]) or (FIELDS[key] is not bool and isinstance(value, bool)):
            raise PolicyError(f"{path}: {key}: {NAMES[FIELDS[key]]}; got {value!r}")
    for key, low, high in (("max_lease_s", 0.1, 86_400), ("max_loss_percent", 0, 100), ("max_delay_ms", 0, 60_000)):
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
        allowed_clients=frozenset(str(c) for c in raw.get("allowed_clients", [])),
        source=str(path),
    )
