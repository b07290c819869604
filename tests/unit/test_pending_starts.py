"""Coordinated starts hold no caller: a fault with a start instant is made unarmed, returned
PENDING, listed and healable, and armed by the engine's own timer on the monotonic clock."""

import threading
import time

import pytest

from faultline.agent.domain import clock
from faultline.agent.domain.engine import FaultEngine
from faultline.agent.domain.errors import KernelError
from faultline.agent.domain.spec import Direction, FaultKind, FaultState, Mechanism
from faultline.agent.domain.validation import RawSpec
from testkit.netns import wait_until
from tests.fakes import LINKS, FakeMechanism


@pytest.fixture
def engine():
    mech = FakeMechanism()
    e = FaultEngine([mech], {Mechanism.NETEM: "this kernel has no netem"}, LINKS.get)
    e.mech = mech
    yield e
    e.close()


def raw(**kw):
    base = dict(kind=FaultKind.DISCONNECT, interface="lab0", direction=Direction.BOTH, lease_ms=10_000,
                peer_cidrs=["10.0.0.2/32"])
    base.update(kw)
    return RawSpec(**base)


def in_ms(ms: float) -> int:
    return time.clock_gettime_ns(time.CLOCK_REALTIME) + int(ms * 1e6)


def state_of(engine: FaultEngine, fault_id: str) -> FaultState:
    return next(f.state for f in engine.list(include_healed=True) if f.fault_id == fault_id)


def test_returns_pending_at_once_made_unarmed_then_armed_at_the_instant(engine):
    start = in_ms(300)
    t0 = time.monotonic()
    f = engine.apply(raw(), start_at_realtime_ns=start)
    assert time.monotonic() - t0 < 0.2, "the call waited for the start"
    assert f.state is FaultState.PENDING and f.applied_at is None and f.starts_at.realtime_ns == start
    assert f.lease_expires_at.monotonic_ns - f.starts_at.monotonic_ns == 10_000 * 1_000_000
    assert engine.mech.log == [("prepare", f.fault_id)]
    assert [x.state for x in engine.list()] == [FaultState.PENDING]
    wait_until(lambda: state_of(engine, f.fault_id) is FaultState.ACTIVE, 5, "armed")
    assert engine.mech.log == [("prepare", f.fault_id), ("arm", f.fault_id)]
    late_ns = f.applied_at.realtime_ns - start
    assert 0 <= late_ns < 20_000_000, late_ns
    assert f.lease_expires_at.monotonic_ns - f.applied_at.monotonic_ns == 10_000 * 1_000_000


@pytest.mark.parametrize("cancel", ["heal", "heal_all", "close"])
def test_a_pending_fault_is_cancelled_by_heal_heal_all_and_shutdown_and_never_arms(engine, cancel):
    f = engine.apply(raw(), start_at_realtime_ns=in_ms(400))
    healed = {"heal": lambda: [engine.heal(f.fault_id)], "heal_all": engine.heal_all, "close": engine.close}[cancel]()
    assert [h.fault_id for h in healed] == [f.fault_id]
    assert healed[0].state is (FaultState.SHUTDOWN if cancel == "close" else FaultState.HEALED)
    assert engine.mech.installed == {}
    time.sleep(0.5)  # past its instant: a cancelled start must not arm (the absence of an event)
    assert [op for op, _ in engine.mech.log] == ["prepare", "heal"]


def test_renewing_a_pending_fault_counts_its_lease_from_the_start(engine):
    f = engine.apply(raw(), start_at_realtime_ns=in_ms(2000))
    engine.renew(f.fault_id, 20_000)
    assert f.lease_expires_at.monotonic_ns - f.starts_at.monotonic_ns == 20_000 * 1_000_000


def test_a_realtime_step_after_the_accept_neither_hastens_nor_delays_the_start(engine):
    accepted = time.monotonic_ns()
    f = engine.apply(raw(), start_at_realtime_ns=in_ms(300))
    clock.set_skew(30 * 10**9)  # the wall clock jumps 30 s ahead, as a bad NTP step would
    try:
        wait_until(lambda: state_of(engine, f.fault_id) is FaultState.ACTIVE, 5, "armed")
    finally:
        clock.set_skew(0)
    waited_ms = (f.applied_at.monotonic_ns - accepted) / 1e6
    assert 280 <= waited_ms < 1000, waited_ms


def test_many_pending_starts_hold_no_caller_and_heal_all_takes_them_all(engine):
    start = in_ms(5000)
    t0 = time.monotonic()
    ids = [engine.apply(raw(), start_at_realtime_ns=start).fault_id for _ in range(100)]
    assert time.monotonic() - t0 < 2.0
    assert sorted(f.fault_id for f in engine.list() if f.state is FaultState.PENDING) == sorted(ids)
    assert sorted(f.fault_id for f in engine.heal_all()) == sorted(ids) and engine.mech.installed == {}


class FailingArm(FakeMechanism):
    def arm(self, fault_id):
        raise KernelError("map update", 2)


def test_a_start_that_fails_undoes_what_was_made_and_says_why():
    mech = FailingArm()
    e = FaultEngine([mech], {}, LINKS.get)
    try:
        f = e.apply(raw(), start_at_realtime_ns=in_ms(100))
        wait_until(lambda: state_of(e, f.fault_id) is not FaultState.PENDING, 5, "start tried")
        assert f.state is FaultState.HEALED and "its start failed" in f.heal_error
        assert mech.installed == {}
    finally:
        e.close()


def test_the_start_timer_is_not_the_callers_thread(engine):
    """A pending fault arms with no thread of the caller's alive (the gRPC worker is free)."""
    out = []
    t = threading.Thread(target=lambda: out.append(engine.apply(raw(), start_at_realtime_ns=in_ms(200))))
    t.start()
    t.join(timeout=2)
    assert not t.is_alive() and out[0].state is FaultState.PENDING
    wait_until(lambda: state_of(engine, out[0].fault_id) is FaultState.ACTIVE, 5, "armed after its caller ended")


def test_the_kernel_keeps_each_lease_end_set_at_apply_moved_by_renew_and_at_the_start(engine):
    """What the mechanism is told to keep in the kernel is the engine's own lease end, always."""
    now = engine.apply(raw())
    assert engine.mech.deadlines[now.fault_id] == now.lease_expires_at.monotonic_ns
    engine.renew(now.fault_id, 20_000)
    assert engine.mech.deadlines[now.fault_id] == now.lease_expires_at.monotonic_ns
    later = engine.apply(raw(), start_at_realtime_ns=in_ms(100))
    assert engine.mech.deadlines[later.fault_id] == later.starts_at.monotonic_ns + 10_000 * 1_000_000
    wait_until(lambda: state_of(engine, later.fault_id) is FaultState.ACTIVE, 5, "armed")
    assert engine.mech.deadlines[later.fault_id] == later.lease_expires_at.monotonic_ns
