"""Both clocks at one instant: realtime for humans and other hosts, monotonic for intervals."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Stamp:
    realtime_ns: int
    monotonic_ns: int

    def plus(self, ns: int) -> Stamp:
        return Stamp(self.realtime_ns + ns, self.monotonic_ns + ns)


def now() -> Stamp:
    # Read monotonic between two realtime reads would be more precise; one read each is
    # within a microsecond here and keeps the pair simple.
    return Stamp(time.clock_gettime_ns(time.CLOCK_REALTIME), time.clock_gettime_ns(time.CLOCK_MONOTONIC))


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
