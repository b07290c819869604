"""Delay distribution tables for netem (TCA_NETEM_DELAY_DIST), computed, not read from disk.

netem draws a table entry t at random and delays by `delay + jitter * t / NETEM_DIST_SCALE`,
so a table is the inverse CDF of a zero-mean, unit-spread distribution, scaled and
clamped to s16. The recipes are iproute2's (normal.c, pareto.c, paretonormal.c); a test
compares our tables with the ones iproute2 ships where they are installed.
"""

from __future__ import annotations

from functools import cache
from statistics import NormalDist

from faultline.agent.domain.spec import Distribution

SCALE = 8192        # NETEM_DIST_SCALE
SIZE = 4096         # entries iproute2 ships; the kernel accepts up to 16384
PARETO_ALPHA = 3.0


def _s16(x: float) -> int:
    return max(-32768, min(32767, int(x)))


def _normal_raw() -> list[float]:
    # iproute2 fills a 16384-entry inverse CDF and keeps every fourth entry.
    inv = NormalDist().inv_cdf
    return [inv((4 * i + 0.5) / (4 * SIZE)) * SCALE for i in range(SIZE)]


def _pareto_raw() -> list[float]:
    # Pareto with alpha 3 shifted to mean 0 and scaled so its spread is comparable.
    return [((i / 65536) ** (-1 / PARETO_ALPHA) - 1.5) * (4 / 3) * SCALE for i in range(65536, 0, -16)]


@cache
def table(dist: Distribution) -> tuple[int, ...]:
    if dist is Distribution.NORMAL:
        return tuple(_s16(round(x)) for x in _normal_raw())
    if dist is Distribution.PARETO:
        return tuple(_s16(round(x)) for x in _pareto_raw())
    if dist is Distribution.PARETONORMAL:
        # A quarter normal, three quarters (already clamped) pareto, as iproute2 mixes them.
        mixed = zip(_normal_raw(), table(Distribution.PARETO), strict=True)
        return tuple(_s16(0.25 * round(n) + 0.75 * p) for n, p in mixed)
    raise ValueError(f"{dist.name} needs no table: netem's default is uniform")
