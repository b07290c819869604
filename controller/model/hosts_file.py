"""`hosts:`, the real hosts of a scenario file or of a hosts file (`faultline run`, the pytest
plugin's --faultline-hosts): where each agent is, the host's data addresses and interface, its
tags, and how to reach it over ssh for the processes a scenario runs there.

    hosts:
      app1: {agent: 10.1.0.5, ipv4: 10.2.0.5, interface: eth1, tags: [app], ssh: qa@10.1.0.5}
      db1:  {agent: "10.1.0.6:7070", ipv4: 10.2.0.6, interface: eth1, tags: [db]}

`agent` is HOST[:PORT] (7070 unless given); `ipv4`/`ipv6` the addresses other hosts reach this
one at (the data plane: what faults name as peers), which may differ from the agent's address on
a host with a management interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from faultline.controller.agents.channel import agent_address
from faultline.controller.model.schema import List, Map, Spec, Str, check_text

SSH_RE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._:\[\]-]+$")  # [user@]host, no options


@dataclass(frozen=True)
class HostSpec:
    """A real host's agent; lab hosts get theirs when the lab is up."""

    name: str
    agent: str
    ipv4: str
    ipv6: str = ""
    interface: str = ""
    tags: tuple[str, ...] = ()
    ssh: str = ""  # [user@]host: OpenSSH with the user's own keys and config


class _Agent(Spec):
    def check(self, node: Any, path: str, file: str) -> Any:
        try:
            return agent_address(Str().check(node, path, file))
        except ValueError:
            raise self.fail(node, path, file, "HOST, HOST:PORT or [IPv6]:PORT (port 1-65535; 7070 unless "
                            "given)") from None


class _Ssh(Spec):
    def check(self, node: Any, path: str, file: str) -> Any:
        text = Str().check(node, path, file)
        if not SSH_RE.match(text) or text.startswith("-"):
            raise self.fail(node, path, file, "[user@]host for ssh (options go in ~/.ssh/config)")
        return text


class HostsSpec(Spec):
    """hosts: NAME: {agent, ipv4, ipv6, interface, tags, ssh}."""

    def check(self, node: Any, path: str, file: str) -> Any:
        entry = Map({"agent": _Agent(), "ipv4": Str(), "ipv6": Str(), "interface": Str(), "tags": List(Str()),
                     "ssh": _Ssh()}, required=frozenset({"agent", "ipv4"}))
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise self.fail(node, path, file, "a mapping of host name to {agent, ipv4, ipv6, interface, tags, ssh}")
        return {k.value: entry.check(v, f"{path}.{k.value}", file) for k, v in node.value}


def specs(raw: dict[str, dict[str, Any]]) -> dict[str, HostSpec]:
    return {n: HostSpec(n, h["agent"], h["ipv4"], h.get("ipv6", ""), h.get("interface", ""),
                        tuple(h.get("tags", ())), h.get("ssh", "")) for n, h in raw.items()}


def load(path: Path) -> dict[str, HostSpec]:
    """A hosts file: `hosts:` as in a scenario file (other keys refused). SchemaError names file and line."""
    raw = check_text(path.read_text(), Map({"hosts": HostsSpec()}, required=frozenset({"hosts"})), str(path))
    return specs(raw["hosts"])
