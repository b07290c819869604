"""The four categories of the chaos suite against the trading lab (contracts/scenarios/trading)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from faultline.controller.cli.demo import why_no_netem
from faultline.controller.model import config as resilience
from faultline.examples.trading import LAB_CONFIG, check
from tests.chaos.conftest import failed

pytestmark = [pytest.mark.chaos, pytest.mark.root]

TRADING = Path(__file__).resolve().parents[2] / "contracts" / "scenarios" / "trading"
SCENARIOS = sorted(p for p in TRADING.glob("*.yaml") if p.name != "workload.yaml")


def _marks(p: Path) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] * ("30s" in p.stem) + [pytest.mark.netem] * p.stem.startswith("latency")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=_marks(p)) for p in SCENARIOS])
def test_scenario_recovers_with_every_order_exactly_once(path: Path, run_scenario, request):
    """RTO, data loss 0, order integrity, positions, market-data continuity, rollbacks: all of them,
    and the bounds the scenario puts on the workload's own counters (targets.counters)."""
    if request.node.get_closest_marker("netem") and (why := why_no_netem()):
        pytest.skip(f"{why}: the VM stage runs the latency cases (make test-vm)")
    o = run_scenario(path)
    assert o.passed, failed(o)
    names = {v.name for v in o.verdicts}
    assert {"RTO", "data loss", "integrity", "market-data continuity", "rollbacks"} <= names
    assert o.metrics.counters["sent"] > 20  # orders flowed the whole time


def test_unsafe_replay_is_caught_with_the_duplicated_order_ids(run_scenario):
    """Must show 2: the trader with replay under new ids executes orders twice; the check names them."""
    o = run_scenario(Path(__file__).with_name("broken_trader.yaml"), scorecard=False)
    assert not o.passed
    integrity = next(v for v in o.verdicts if v.name == "integrity")
    assert not integrity.ok and o.metrics.counters["duplicates"] > 0
    _, validator = check.report(Path("build/chaos/broken_trader"), in_flight_s=0)
    duplicates = [v for v in validator.violations if v.kind == "duplicate"]
    assert duplicates and all(v.subject.startswith("T") for v in duplicates)
    assert len(duplicates) == o.metrics.counters["duplicates"]  # each executed twice, named once
    print("duplicated:", ", ".join(v.subject for v in duplicates))


def test_reconnect_backoff_follows_the_configured_schedule_in_the_kernel(run_scenario):
    """Intervals between the trader's SYN_SENT transitions (new connect attempts) during a
    partition = connection timeout + min(base * 2^k, max), from the lab config."""
    cfg = resilience.load(LAB_CONFIG)
    o = run_scenario(Path(__file__).with_name("backoff.yaml"), scorecard=False)
    assert o.passed, failed(o)
    m = o.metrics
    syns = sorted(e["t_ns"] for e in o.journal["kernel_events"]
                  if e["host"] == "trader" and e["kind"] == "STATE" and e["new_state"] == "SYN_SENT"
                  and e["flow"].endswith(":4002") and m.t_inject <= e["t_ns"] <= m.t_heal)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(syns)]
    expected = [cfg.connection_timeout_s + min(cfg.base_retry_delay_s * 2 ** k, cfg.max_retry_delay_s)
                for k in range(len(gaps))]
    print("SYN gaps", [f"{g:.3f}" for g in gaps], "expected", expected)
    assert len(gaps) >= 3, gaps  # 9 s of partition: at least four attempts
    for k, (got, want) in enumerate(zip(gaps, expected, strict=True)):
        assert abs(got - want) < 0.1, (k, got, want, gaps)
