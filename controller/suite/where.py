"""Where the chaos suite's agents are, from the plugin's settings, checked at session start so a
mistake is one line before any test runs: a lab, --faultline-agents NAME=HOST[:PORT],... or
--faultline-hosts FILE (a scenario file's `hosts:` mapping), and the TLS directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faultline.controller.agents.channel import check_tls_dir
from faultline.controller.agents.errors import AgentError
from faultline.controller.env.hosts import Endpoint, file_endpoints, parse_agents
from faultline.controller.model import hosts_file
from faultline.controller.model.schema import SchemaError


class SettingsError(ValueError):
    """A setting that cannot work, said in one line."""


@dataclass(frozen=True)
class Agents:
    endpoints: dict[str, Endpoint] | None  # None: the lab's, once it is up
    tls_dir: Path | None


def resolve(lab: bool, agents: str, hosts_path: str, tls_dir: str) -> Agents | None:
    """The agents the settings name (None when none are given: tests needing them skip)."""
    given = [name for name, value in (("--faultline-lab", lab), ("--faultline-agents", agents),
                                      ("--faultline-hosts", hosts_path)) if value]
    if len(given) > 1:
        raise SettingsError(f"{' and '.join(given)}: give one of them (where the agents are)")
    tls = Path(tls_dir).expanduser() if tls_dir else None
    if tls is not None:
        try:
            check_tls_dir(tls, "the agents")
        except AgentError as e:
            raise SettingsError(f"--faultline-tls-dir: {e.message}") from None
    if lab:
        return Agents(None, tls)
    if agents:
        try:
            return Agents(parse_agents(agents), tls)
        except ValueError as e:
            raise SettingsError(f"--faultline-agents: {e}") from None
    if hosts_path:
        try:
            return Agents(file_endpoints(hosts_file.load(Path(hosts_path))), tls)
        except SchemaError as e:
            raise SettingsError(f"--faultline-hosts: {e}") from None
        except OSError as e:
            raise SettingsError(f"--faultline-hosts: {hosts_path}: {e.strerror}") from None
    return None
