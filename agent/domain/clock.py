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


# Lab only (`faultline-agent serve --clock-skew-ms`): realtime reported this far off, so
# tests can prove the controller's clock correction. 0 everywhere else.
_skew_ns = 0


def set_skew(ns: int) -> None:
    global _skew_ns
    _skew_ns = ns


def now() -> Stamp:
    # Read monotonic between two realtime reads would be more precise; one read each is
    # within a microsecond here and keeps the pair simple.
    return Stamp(time.clock_gettime_ns(time.CLOCK_REALTIME) + _skew_ns, time.clock_gettime_ns(time.CLOCK_MONOTONIC))


def wait_until(realtime_ns: int) -> None:
    """Sleep until this host's (reported) realtime reaches realtime_ns; the last millisecond is
    spun, since a sleep can overshoot by more than the skew a coordinated start allows."""
    while (left := realtime_ns - now().realtime_ns) > 0:
        if left > 2_000_000:
            time.sleep((left - 1_000_000) / 1e9)


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Offset:
    """realtime - monotonic, for stamping kernel (monotonic) times with realtime."""

    ns: int
    uncertainty_ns: int  # half the narrowest realtime read pair that bracketed a monotonic read

    def stamp(self, monotonic: int) -> Stamp:
        return Stamp(monotonic + self.ns, monotonic)


def measure_offset(samples: int = 16) -> Offset:
    # Realtime read on both sides of a monotonic read; the narrowest bracket wins (like
    # NTP's lowest-RTT sample). Re-measured often: NTP slews realtime, not monotonic.
    best = (0, 1 << 62)
    for _ in range(samples):
        r1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r2 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if r2 - r1 < best[1]:
            best = ((r1 + r2) // 2 - m, r2 - r1)
    return Offset(best[0] + _skew_ns, (best[1] + 1) // 2)
