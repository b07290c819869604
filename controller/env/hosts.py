"""The hosts a controller drives: where each agent is, the host's addresses, and its clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from faultline.controller.agents.client import AgentClient, agent_address
from faultline.controller.agents.clocksync import AgentClock, sync
from faultline.controller.env.lab import LabState
from faultline.controller.model.hosts_file import HostSpec


@dataclass(frozen=True)
class Endpoint:
    name: str
    agent: str        # HOST:PORT of the agent
    # The host's data-plane addresses (what other hosts reach it at, what faults name as peers).
    ipv4: str
    ipv6: str = ""
    interface: str = ""  # "" lets the agent take the one routing to the peers
    netns: str = ""   # lab hosts
    tags: tuple[str, ...] = ()

    def cidrs(self) -> list[str]:
        return ([f"{self.ipv4}/32"] if self.ipv4 else []) + ([f"{self.ipv6}/128"] if self.ipv6 else [])


@dataclass
class Host:
    """An endpoint with its open client and its clock's offset from the controller's."""

    endpoint: Endpoint
    client: AgentClient
    clock: AgentClock

    @property
    def name(self) -> str:
        return self.endpoint.name


def lab_endpoints(state: LabState, names: Iterable[str] | None = None) -> dict[str, Endpoint]:
    return {n: Endpoint(n, h.agent, h.ipv4, h.ipv6, h.interface, h.netns)
            for n, h in state.hosts.items() if names is None or n in names}


def file_endpoints(specs: Mapping[str, HostSpec]) -> dict[str, Endpoint]:
    """A hosts file's (or a scenario's) real hosts: the data addresses may differ from the agent's."""
    return {n: Endpoint(n, h.agent, h.ipv4, h.ipv6, h.interface, tags=h.tags) for n, h in specs.items()}


def parse_agents(text: str) -> dict[str, Endpoint]:
    """'trader=10.1.0.5:7070,gateway=10.1.0.6:7070' -> endpoints (the host's address is the agent's)."""
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, given = item.partition("=")
        try:
            agent = agent_address(given) if sep and name else ""
        except ValueError as e:
            raise ValueError(f"{item!r}: {e}") from None
        if not agent:
            raise ValueError(f"{item!r}: NAME=HOST[:PORT], e.g. trader=10.1.0.5:7070")
        addr = agent.rpartition(":")[0].strip("[]")
        out[name] = Endpoint(name, agent, "", addr) if ":" in addr else Endpoint(name, agent, addr)
    if not out:
        raise ValueError("no agents given: NAME=HOST:PORT[,NAME=HOST:PORT...]")
    return out


def connect(endpoint: Endpoint, timeout_s: float = 10.0, tls_dir: Path | str | None = None) -> Host:
    client = AgentClient(endpoint.agent, timeout_s=timeout_s, tls_dir=tls_dir)
    return Host(endpoint, client, sync(client))
