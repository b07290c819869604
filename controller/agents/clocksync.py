"""Per-agent clock offsets, NTP style, so that every agent timestamp lands on the controller's clock.

One exchange: t1 (controller sends), t2 (agent receives), t3 (agent replies), t4
(controller receives), all CLOCK_REALTIME. If the two legs take equally long, the agent's
clock is ahead by ((t2 - t1) + (t3 - t4)) / 2; whatever asymmetry there is stays within
half the round trip (t4 - t1) - (t3 - t2). Of N exchanges the one with the lowest round
trip has the tightest bound, and is kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from faultline.controller.agents.client import AgentClient
from faultline.v1 import agent_pb2 as pb


def now_ns() -> int:
    """The controller's clock: CLOCK_REALTIME, ns. Every mark in a journal is on it."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


def sleep_until(t_ns: int) -> None:
    """Sleep until the controller's clock reaches t_ns (in short naps: Ctrl-C stays prompt)."""
    while (left := t_ns - now_ns()) > 0:
        time.sleep(min(left / 1e9, 0.1))


@dataclass(frozen=True)
class Exchange:
    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def offset_ns(self) -> int:
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) // 2

    @property
    def rtt_ns(self) -> int:
        return (self.t4 - self.t1) - (self.t3 - self.t2)


@dataclass(frozen=True)
class AgentClock:
    agent: str
    offset_ns: int       # agent realtime minus controller realtime
    uncertainty_ns: int  # half the round trip of the exchange kept
    samples: int

    def to_controller(self, agent_realtime_ns: int) -> int:
        return agent_realtime_ns - self.offset_ns

    def __str__(self) -> str:
        return (f"{self.offset_ns / 1e6:+.3f} ms ± {self.uncertainty_ns / 1e6:.3f} ms "
                f"(lowest round trip of {self.samples})")


def best(agent: str, exchanges: Sequence[Exchange]) -> AgentClock:
    if not exchanges:
        raise ValueError("no clock exchange to choose from")
    e = min(exchanges, key=lambda x: x.rtt_ns)
    return AgentClock(agent, e.offset_ns, (max(e.rtt_ns, 0) + 1) // 2, len(exchanges))


def sync(client: AgentClient, samples: int = 8) -> AgentClock:
    exchanges = []
    for _ in range(samples):
        t1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        r: pb.SyncClockResponse = client.sync_clock(t1)
        t4 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        exchanges.append(Exchange(r.t1_realtime_ns, r.received.realtime_ns, r.sent.realtime_ns, t4))
    return best(client.address, exchanges)
