"""FaultInjector: the chaos suite's network_fault_injector, backed by real agents.

    with injector.inject_disconnect(duration_s=3.0, target="gateway:4002"):
        ...   # the body runs while the kernel drops; the fault lasts duration_s
    with injector.inject_packet_loss(loss_probability=0.2), injector.inject_latency(latency_ms=100):
        ...   # combined by nesting; without duration_s a fault lasts as long as its block

A target is HOST[:PORT], HOST being an agent's name or an address. The fault goes on the
agents named by `on` (default: every agent but the target's own), cutting them from the
target, applied on all of them at one instant. It is healed when the block ends - at
once if the block raises; otherwise not before duration_s - and its lease outlasts that
by a few seconds in case this process dies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn

from faultline.controller.agents import coordinate
from faultline.controller.agents.client import AgentError, Unsupported
from faultline.controller.agents.clocksync import now_ns, sleep_until
from faultline.controller.agents.spec import Delay, Disconnect, Loss, Params, fault_spec
from faultline.controller.env.hosts import Host

# A fault without duration_s lasts its block; its lease is the dead-man bound meanwhile.
OPEN_ENDED_LEASE_S = 300.0


class InjectionRefused(Exception):
    """An agent refused the fault (bad value, policy): the message says which and why."""


class HealFailed(Exception):
    """A heal failed on some hosts (every other host's fault was healed all the same)."""


class Unavailable(Exception):
    """The kernel under an agent cannot do this fault (e.g. no netem): a test should skip."""


@dataclass(frozen=True)
class Target:
    cidrs: list[str]
    ports: list[int]
    host: str = ""   # the agent name, when the target is one of the hosts

    def __str__(self) -> str:
        return f"{self.host or ','.join(self.cidrs)}{':' + str(self.ports[0]) if self.ports else ''}"


@dataclass
class ActiveFault:
    """A fault while its block runs: where it is, when it went in, and its kernel counters."""

    kind: str
    target: Target
    applied: list[coordinate.Applied]
    hosts: Mapping[str, Host]
    applied_ns: int
    healed_ns: int | None = None
    final: dict[str, tuple[int, int]] = field(default_factory=dict)   # host -> (matched, dropped)

    @property
    def skew_ns(self) -> int:
        return coordinate.skew_ns(self.applied)

    def counters(self) -> dict[str, tuple[int, int]]:
        """(matched, dropped) per host, now; after the heal, the final ones."""
        if self.healed_ns is not None:
            return dict(self.final)
        out = {}
        for a in self.applied:
            for f in self.hosts[a.host].client.list():
                if f.fault_id == a.fault_id:
                    out[a.host] = (f.counters.matched, f.counters.dropped)
        return out


class FaultInjector:
    def __init__(self, hosts: Mapping[str, Host], default_target: str = "", default_on: Sequence[str] = (),
                 listeners: list[object] | None = None, unavailable: Callable[[str], NoReturn] | None = None) -> None:
        self.hosts = hosts
        self.default_target, self.default_on = default_target, list(default_on)
        # Told fault_applied(t_ns) / fault_healed(t_ns): recovery timers fed by the kernel.
        self.listeners = listeners if listeners is not None else []
        self.unavailable = unavailable or _unavailable
        self.history: list[ActiveFault] = []

    def target(self, text: str | None) -> Target:
        text = text or self.default_target
        if not text:
            raise InjectionRefused("no target: pass target='HOST[:PORT]' or --faultline-target")
        host, _, port = text.rpartition(":") if text.count(":") == 1 or text.startswith("[") else (text, "", "")
        host = host.strip("[]")
        if port and not port.isdigit():
            raise InjectionRefused(f"target {text!r}: HOST[:PORT], the port a number")
        ports = [int(port)] if port else []
        if host in self.hosts:
            return Target(self.hosts[host].endpoint.cidrs(), ports, host)
        try:
            net = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise InjectionRefused(f"target {text!r}: neither a host ({', '.join(self.hosts)}) nor an address") \
                from None
        return Target([str(net)], ports)

    def on(self, on: Sequence[str] | str | None, target: Target) -> list[str]:
        names = [on] if isinstance(on, str) else list(on or self.default_on)
        names = names or [n for n in self.hosts if n != target.host]
        unknown = [n for n in names if n not in self.hosts]
        if unknown or not names:
            raise InjectionRefused(f"on={unknown or names}: agents are {', '.join(self.hosts)}")
        return names

    @contextmanager
    def inject_disconnect(self, duration_s: float, target: str | None = None,
                          on: Sequence[str] | str | None = None) -> Iterator[ActiveFault]:
        """Drop every packet between the hosts and the target, both directions."""
        with self.fault(Disconnect(), duration_s, target, on) as f:
            yield f

    @contextmanager
    def inject_packet_loss(self, loss_probability: float, duration_s: float | None = None, target: str | None = None,
                           on: Sequence[str] | str | None = None) -> Iterator[ActiveFault]:
        """Drop each packet with this probability (a fraction, 0 < p <= 1), both directions."""
        if not 0 < loss_probability <= 1:
            raise InjectionRefused(f"loss_probability: a fraction 0 < p <= 1; got {loss_probability!r}")
        with self.fault(Loss(percent=loss_probability * 100), duration_s, target, on) as f:
            yield f

    @contextmanager
    def inject_latency(self, latency_ms: float, duration_s: float | None = None, jitter_ms: float = 0.0,
                       target: str | None = None, on: Sequence[str] | str | None = None) -> Iterator[ActiveFault]:
        """Delay packets to the target (netem, egress of each host)."""
        with self.fault(Delay(delay_ms=latency_ms, jitter_ms=jitter_ms), duration_s, target, on) as f:
            yield f

    @contextmanager
    def fault(self, what: Params, duration_s: float | None, target_text: str | None, on: Sequence[str] | str | None,
              direction: str = "") -> Iterator[ActiveFault]:
        """Any network fault kind the agents know: `what` is its parameters (agents/spec.py)."""
        kind = what.kind
        if duration_s is not None and duration_s <= 0:
            raise InjectionRefused(f"duration_s: more than 0; got {duration_s!r}")
        target = self.target(target_text)
        names = self.on(on, target)
        lease = (duration_s + coordinate.LEASE_SLACK_S) if duration_s is not None else OPEN_ENDED_LEASE_S
        specs = [coordinate.Target(n, self.hosts[n].client, self.hosts[n].clock, fault_spec(
            what, self._interface(n, kind), peers=target.cidrs, ports=target.ports, direction=direction, lease_s=lease,
            label=f"pytest {kind}")) for n in names]
        landed: list[coordinate.Accepted] = []
        fault: ActiveFault | None = None
        try:
            applied, refused = coordinate.apply_at(specs, on_accepted=landed.append)
            if refused:
                errors = "; ".join(f"{r.host}: {r.error.message}" for r in refused)
                if all(isinstance(r.error, Unsupported) for r in refused):
                    self.unavailable(f"{kind}: {errors}")
                raise InjectionRefused(f"{kind} refused: {errors}")
            fault = ActiveFault(kind, target, applied, self.hosts, min(a.applied_ns for a in applied))
            self.history.append(fault)
            self._tell("fault_applied", fault.applied_ns)
            yield fault
            if duration_s is not None:  # the block ended early: the fault still lasts duration_s
                sleep_until(fault.applied_ns + int(duration_s * 1e9))
        finally:
            if landed:  # also when the block raised: heal at once
                healed_ns, final = self._heal(landed)
                if fault is not None:
                    fault.healed_ns, fault.final = healed_ns, final
                    self._tell("fault_healed", healed_ns)

    def _interface(self, name: str, kind: str) -> str:
        """A reset acts on the host's sockets, not on an interface."""
        return "" if kind == "reset" else self.hosts[name].endpoint.interface

    def _heal(self, landed: list[coordinate.Accepted]) -> tuple[int, dict[str, tuple[int, int]]]:
        """Heal on every host; one host's failure never stops the others' heals (all are said, after)."""
        final, last, failed = {}, 0, []
        for a in landed:
            host = self.hosts[a.host]
            try:
                f = host.client.heal(a.fault_id)
                final[a.host] = (f.counters.matched, f.counters.dropped)
                last = max(last, host.clock.to_controller(f.healed_at.realtime_ns))
            except AgentError as e:
                if e.code.name != "NOT_FOUND":  # NOT_FOUND: its lease already healed it
                    failed.append(f"{a.host}: {a.fault_id}: {e}")
        if failed:
            raise HealFailed("heal failed on " + "; ".join(failed) + " (the others healed; a failed one ends at "
                             "its lease)")
        return last or now_ns(), final

    def _tell(self, what: str, t_ns: int) -> None:
        for listener in self.listeners:
            getattr(listener, what, lambda _: None)(t_ns)


def _unavailable(reason: str) -> NoReturn:
    raise Unavailable(reason)


