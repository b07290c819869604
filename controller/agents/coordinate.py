"""Coordinated start: one fault on several agents at one instant T of the controller's clock.

Each agent is sent T on its own clock (T + its measured offset) ahead of time. It makes the
fault in the kernel unarmed, answers PENDING at once and arms it at T on a timer of its
own, so the network's jitter does not enter the skew; what remains is each agent's wake-up
precision and the offsets' uncertainty. A host that refuses is known before T: the others
are healed before they ever act. After T the apply times are read back on the agents'
clocks and put on the controller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.agents.clocksync import AgentClock, now_ns, sleep_until
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


# How long after T an agent may take to show its pending fault started.
START_GRACE_S = 5.0
START_POLL_S = 0.005


@dataclass(frozen=True)
class Accepted:
    """A fault an agent took (PENDING or already acting): what a rollback heals."""
    host: str
    fault_id: str


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
             on_accepted: Callable[[Accepted], None] = lambda _: None) -> tuple[list[Applied], list[Refused]]:
    """Apply every target's spec at start_ns (controller clock; default now + lead_s; 0: no
    instant, each agent applies when its request arrives - the baseline a benchmark compares
    with). on_accepted is called as each agent takes its fault, so a caller interrupted
    meanwhile still knows what to roll back. When any host refuses, nothing is waited for:
    the caller heals the accepted ones, which have not acted yet if that is before T."""
    at_once = start_ns == 0
    if start_ns is None or at_once:
        start_ns = now_ns() + (0 if at_once else int(lead_s * 1e9))

    def send(t: Target) -> tuple[Target, pb.ApplyFaultResponse] | Refused:
        wait_s = max(0.0, (start_ns - now_ns()) / 1e9)
        try:
            r = t.client.apply(t.spec, 0 if at_once else start_ns + t.clock.offset_ns, wait_s)
        except AgentError as e:
            return Refused(t.host, e)
        on_accepted(Accepted(t.host, r.fault_id))
        return t, r

    def started(sent: tuple[Target, pb.ApplyFaultResponse]) -> Applied | Refused:
        t, r = sent
        applied_at = r.applied_at if r.state != pb.FAULT_STATE_PENDING else None
        if applied_at is None:
            try:
                applied_at = _wait_started(t, r.fault_id, start_ns)
            except AgentError as e:
                return Refused(t.host, e)
        agent_ns = applied_at.realtime_ns
        return Applied(t.host, r.fault_id, start_ns, agent_ns, t.clock.to_controller(agent_ns), t.clock.uncertainty_ns)

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        results = list(pool.map(send, targets))
        refused = [r for r in results if isinstance(r, Refused)]
        if refused:
            return [], refused
        done = list(pool.map(started, [r for r in results if not isinstance(r, Refused)]))
    return [r for r in done if isinstance(r, Applied)], [r for r in done if isinstance(r, Refused)]


def _wait_started(t: Target, fault_id: str, start_ns: int) -> pb.Timestamp:
    """The agent's applied_at for a pending fault once its instant has passed."""
    sleep_until(start_ns)
    deadline = time.monotonic() + START_GRACE_S
    while True:
        f = next((f for f in t.client.list(include_healed=True) if f.fault_id == fault_id), None)
        if f is not None and f.HasField("applied_at") and f.applied_at.realtime_ns:
            return f.applied_at
        if f is None or f.state != pb.FAULT_STATE_PENDING:
            why = f.heal_error if f is not None and f.heal_error else "it is no longer listed"
            raise AgentError(t.client.address, grpc.StatusCode.ABORTED, f"{fault_id} did not start: {why}")
        if time.monotonic() > deadline:
            raise AgentError(t.client.address, grpc.StatusCode.DEADLINE_EXCEEDED,
                             f"{fault_id} still pending {START_GRACE_S:g} s after its start")
        time.sleep(START_POLL_S)
