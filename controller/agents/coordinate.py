"""Coordinated start: one fault on several agents at one instant T of the controller's clock.

Each agent is sent T on its own clock (T + its measured offset) ahead of time and waits
for it itself, so the network's jitter does not enter the skew; what remains is each
agent's wake-up precision and the offsets' uncertainty. Apply times come back on the
agents' clocks and are put on the controller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.agents.clocksync import AgentClock, now_ns
from faultline.v1 import agent_pb2 as pb

# How far ahead T is set: room for the requests to reach every agent before T.
DEFAULT_LEAD_S = 0.15
# A fault's lease outlasts its planned end by this much: if the controller dies, the agent
# heals it by itself shortly after it was meant to end.
LEASE_SLACK_S = 5.0


@dataclass(frozen=True)
class Target:
    host: str
    client: AgentClient
    clock: AgentClock
    spec: pb.FaultSpec


@dataclass(frozen=True)
class Applied:
    host: str
    fault_id: str
    planned_ns: int           # T, controller clock
    applied_agent_ns: int     # as the agent stamped it
    applied_ns: int           # on the controller's clock
    uncertainty_ns: int       # of applied_ns: the offset's bound


@dataclass(frozen=True)
class Refused:
    host: str
    error: AgentError


def skew_ns(applied: Sequence[Applied]) -> int:
    """Spread of the corrected apply times: the coordinated start's skew."""
    times = [a.applied_ns for a in applied]
    return max(times) - min(times) if times else 0


def apply_at(targets: Sequence[Target], start_ns: int | None = None, lead_s: float = DEFAULT_LEAD_S,
             on_applied: Callable[[Applied], None] = lambda _: None) -> tuple[list[Applied], list[Refused]]:
    """Apply every target's spec at start_ns (controller clock; default now + lead_s; 0: no
    instant, each agent applies when its request arrives - the baseline a benchmark compares
    with). on_applied is called as each fault lands, so a caller interrupted meanwhile still
    knows what to roll back."""
    at_once = start_ns == 0
    if start_ns is None or at_once:
        start_ns = now_ns() + (0 if at_once else int(lead_s * 1e9))

    def one(t: Target) -> Applied | Refused:
        wait_s = max(0.0, (start_ns - now_ns()) / 1e9)
        try:
            r = t.client.apply(t.spec, 0 if at_once else start_ns + t.clock.offset_ns, wait_s)
        except AgentError as e:
            return Refused(t.host, e)
        agent_ns = r.applied_at.realtime_ns
        a = Applied(t.host, r.fault_id, start_ns, agent_ns, t.clock.to_controller(agent_ns), t.clock.uncertainty_ns)
        on_applied(a)
        return a

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        results = list(pool.map(one, targets))
    return ([r for r in results if isinstance(r, Applied)], [r for r in results if isinstance(r, Refused)])
