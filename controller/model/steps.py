"""The method's steps, one dataclass per kind: what each step does, typed, with the field names
the scenario file uses (a file's keys are these fields, checked by the schema in scenario.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from faultline.controller.agents.spec import Corrupt, Delay, Disconnect, Duplicate, Loss, Params, Rate, Reorder


@dataclass(frozen=True)
class Wait:
    """Nothing happens for the step's duration."""

    kind: ClassVar[str] = "wait"

    @property
    def hosts(self) -> list[str]:
        return []

    def describe(self) -> str:
        return "wait"


@dataclass(frozen=True)
class Partition:
    """Hosts in `a` and hosts in `b` cannot reach each other (both ways, on every host)."""

    a: list[str]
    b: list[str]
    kind: ClassVar[str] = "partition"

    @property
    def hosts(self) -> list[str]:
        return [*self.a, *self.b]

    def describe(self) -> str:
        return f"partition {','.join(self.a)} | {','.join(self.b)}"


@dataclass(frozen=True, kw_only=True)
class _AddressedFault:
    """A fault on the hosts' traffic with these peers and/or ports."""

    hosts: list[str]
    peers: list[str] = field(default_factory=list)       # addresses/CIDRs, may hold placeholders
    peer_hosts: list[str] = field(default_factory=list)  # scenario hosts: their addresses
    ports: list[int] = field(default_factory=list)
    kind: ClassVar[str] = "fault"

    def describe(self) -> str:
        return f"{self.fault} on {','.join(self.hosts)}"  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class NetworkFault(_AddressedFault):
    """A fault on the hosts' interface: disconnect, loss, delay, duplicate, corrupt, reorder, rate."""

    fault: str                                            # the file's `kind:`
    direction: str = ""
    protocol: str = "any"
    mechanism: str = "auto"
    loss_percent: float | None = None                     # loss
    percent: float = 0.0                                  # duplicate, corrupt, reorder
    delay_ms: float = 0.0                                 # delay, reorder
    jitter_ms: float = 0.0                                # delay
    rate_bps: int = 0                                     # rate

    def params(self) -> Params:
        """The kind and its parameters as the agents take them."""
        return {
            "disconnect": lambda: Disconnect(),
            "loss": lambda: Loss(percent=self.loss_percent or 0.0),
            "delay": lambda: Delay(delay_ms=self.delay_ms, jitter_ms=self.jitter_ms),
            "duplicate": lambda: Duplicate(percent=self.percent),
            "corrupt": lambda: Corrupt(percent=self.percent),
            "reorder": lambda: Reorder(percent=self.percent, delay_ms=self.delay_ms),
            "rate": lambda: Rate(bits_per_second=self.rate_bps),
        }[self.fault]()


@dataclass(frozen=True, kw_only=True)
class ResetFault(_AddressedFault):
    """The hosts' kernel resets the matching TCP connections (and refuses new ones) for the duration."""

    fault: ClassVar[str] = "reset"


@dataclass(frozen=True)
class ProcessFault:
    """pause / stop / kill / restart-unit a process the host's policy allows, found one way."""

    hosts: list[str]
    action: str
    target: dict[str, int | str]  # exactly one of pid, name, cmdline, cgroup, unit
    restart: str = ""             # a restart command the host's policy names (kill, stop)
    fault: ClassVar[str] = "process"
    kind: ClassVar[str] = "fault"

    def describe(self) -> str:
        return f"{self.action} {next(iter(self.target.values()))} on {','.join(self.hosts)}"


Action = Wait | Partition | NetworkFault | ResetFault | ProcessFault


def _class_of(kind: str) -> type[NetworkFault | ResetFault | ProcessFault]:
    return ProcessFault if kind == "process" else ResetFault if kind == "reset" else NetworkFault


def keys_of(kind: str) -> set[str]:
    """The keys a `fault:` step of this kind may have, besides kind and duration_s."""
    return {f.name for f in fields(_class_of(kind))} - {"fault"}


def fault_of(body: dict[str, Any]) -> NetworkFault | ResetFault | ProcessFault:
    """A `fault:` step's body (checked by the schema and keys_of; duration_s taken out) as its dataclass."""
    rest = {k: v for k, v in body.items() if k != "kind"}
    cls = _class_of(body["kind"])
    return NetworkFault(fault=body["kind"], **rest) if cls is NetworkFault else cls(**rest)


@dataclass(frozen=True)
class Step:
    index: int
    at_s: float | None         # from the method's start; None: when the previous step ends
    duration_s: float
    action: Action

    @property
    def kind(self) -> str:
        """fault, partition or wait."""
        return self.action.kind

    @property
    def hosts(self) -> list[str]:
        return self.action.hosts

    def describe(self) -> str:
        return self.action.describe()

    @property
    def fault_kind(self) -> str:
        """What the report's fault type is named from: partition, loss, process:kill, ..."""
        a = self.action
        if isinstance(a, ProcessFault):
            return f"process:{a.action}"
        return a.fault if isinstance(a, NetworkFault | ResetFault) else a.kind

    def as_dict(self) -> dict[str, Any]:
        """For the journal: the step as its file gave it (with the defaults filled in)."""
        params = asdict(self.action)
        if isinstance(self.action, NetworkFault | ResetFault | ProcessFault):
            params = {"kind": params.pop("fault", self.action.fault), **params}
        return {"index": self.index, "kind": self.kind, "at_s": self.at_s, "duration_s": self.duration_s,
                "params": params}
