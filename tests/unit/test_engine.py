import time

import pytest

from faultline.agent.domain.engine import FaultEngine
from faultline.agent.domain.errors import FailedPrecondition, InvalidArgument, KernelError, NotFound, PermissionDenied
from faultline.agent.domain.policy import Policy
from faultline.agent.domain.spec import Direction, FaultKind, FaultState, Mechanism
from faultline.agent.domain.validation import RawSpec
from testkit.netns import wait_until
from tests.fakes import LINKS, FakeMechanism


@pytest.fixture
def engine():
    mech = FakeMechanism()
    e = FaultEngine([mech], {Mechanism.NETEM: "this kernel has no netem"}, LINKS.get,
                    route_interface=lambda addr: "eth1" if addr.startswith("192.") else "lab0")
    e.mech = mech
    yield e
    e.close()


def raw(**kw):
    base = dict(kind=FaultKind.DISCONNECT, interface="lab0", direction=Direction.BOTH, lease_ms=10_000)
    base.update(kw)
    return RawSpec(**base)


def test_apply_list_heal(engine):
    f = engine.apply(raw(peer_cidrs=["10.0.0.2/32"]))
    assert f.mechanism is Mechanism.EBPF_TC
    assert f.lease_expires_at.monotonic_ns - f.applied_at.monotonic_ns == 10_000 * 1_000_000
    assert engine.mech.installed[f.fault_id][1] == LINKS["lab0"]
    assert [x.counters.matched for x in engine.list()] == [5]
    healed = engine.heal(f.fault_id)
    assert healed.state is FaultState.HEALED and healed.counters.dropped == 3
    assert engine.list() == [] and engine.list(include_healed=True)[0].fault_id == f.fault_id
    with pytest.raises(NotFound):
        engine.heal(f.fault_id)


def test_invalid_request_touches_no_mechanism(engine):
    with pytest.raises(InvalidArgument):
        engine.apply(raw(ports=[0]))
    assert engine.mech.log == []


def test_lo_is_never_faulted(engine):
    with pytest.raises(InvalidArgument, match=r"spec\.selector\.interface: not lo: loopback is never faulted"):
        engine.apply(raw(interface="lo"))


def test_a_peer_without_a_route_says_so():
    e = FaultEngine([FakeMechanism()], {}, LINKS.get, route_interface=lambda addr: None)
    try:
        with pytest.raises(InvalidArgument, match=r"peer_cidrs\[0\]: a peer this host has a route to"):
            e.apply(raw(interface="", peer_cidrs=["203.0.113.9/32"]))
    finally:
        e.close()


def test_interface_found_by_route_to_the_peers(engine):
    f = engine.apply(raw(interface="", peer_cidrs=["10.0.0.0/24"]))
    assert f.spec.selector.interface == "lab0"
    with pytest.raises(InvalidArgument, match="different interfaces"):
        engine.apply(raw(interface="", peer_cidrs=["10.0.0.0/24", "192.168.0.0/24"]))


def test_missing_mechanism_is_failed_precondition_naming_the_kernel_feature(engine):
    with pytest.raises(FailedPrecondition, match="no netem"):
        engine.apply(raw(kind=FaultKind.DELAY, delay_ms=100))
    with pytest.raises(FailedPrecondition, match="NETEM unavailable: this kernel has no netem"):
        engine.apply(raw(mechanism=Mechanism.NETEM))


def test_lease_expiry_heals_without_any_call(engine):
    f = engine.apply(raw(lease_ms=150))
    deadline = time.monotonic() + 3
    while engine.list() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.list() == []
    assert engine.list(include_healed=True)[0].state is FaultState.EXPIRED
    assert ("heal", f.fault_id) in engine.mech.log


def test_renew_extends_and_validates(engine):
    f = engine.apply(raw(lease_ms=200))
    engine.renew(f.fault_id, 5000)
    time.sleep(0.4)
    assert [x.fault_id for x in engine.list()] == [f.fault_id]
    with pytest.raises(InvalidArgument, match="lease_ms"):
        engine.renew(f.fault_id, 10)
    with pytest.raises(NotFound):
        engine.renew("f-nope", 1000)


def test_close_heals_everything_as_shutdown(engine):
    engine.apply(raw())
    engine.apply(raw(kind=FaultKind.LOSS, loss_percent=5.0))
    healed = engine.close()
    assert {f.state for f in healed} == {FaultState.SHUTDOWN}
    assert engine.mech.installed == {}


def test_coordinated_start_too_far_off_is_refused_before_any_change(engine):
    far = time.clock_gettime_ns(time.CLOCK_REALTIME) + 120 * 10**9
    with pytest.raises(InvalidArgument, match=r"start_at_realtime_ns: within 60 s of the agent's clock"):
        engine.apply(raw(peer_cidrs=["10.0.0.2/32"]), start_at_realtime_ns=far)
    assert engine.mech.log == []


class FailingHeal(FakeMechanism):
    """Its heals fail until `fixed` is set (an undo the kernel refuses, a restart that cannot run)."""

    def __init__(self) -> None:
        super().__init__()
        self.fixed = False
        self.attempts = 0

    def heal(self, fault_id):
        self.attempts += 1
        if not self.fixed:
            raise KernelError("detach bpf filter", 16)
        return super().heal(fault_id)


def test_a_failed_heal_is_listed_retried_with_backoff_and_never_wedges_the_engine():
    mech = FailingHeal()
    audit = []
    e = FaultEngine([mech], {}, LINKS.get, audit=lambda method, verdict, **f: audit.append((method, verdict)))
    try:
        bad = e.apply(raw(lease_ms=100))
        wait_until(lambda: mech.attempts >= 2, 5, "the lease's heal, then the first retry (0.5 s later)")
        [listed] = e.list()
        assert listed.state is FaultState.HEAL_FAILED and "detach bpf filter (errno 16)" in listed.heal_error
        assert e.heal_failed_count() == 1
        assert ("LeaseExpired", "HEAL_FAILED") in audit and ("HealRetry", "HEAL_FAILED") in audit
        with pytest.raises(FailedPrecondition, match="is being healed"):
            e.renew(bad.fault_id, 5000)
        # Everything else keeps working meanwhile.
        mech.fixed = True
        other = e.apply(raw(kind=FaultKind.LOSS, loss_percent=5.0))
        assert e.heal(other.fault_id).state is FaultState.HEALED
        wait_until(lambda: not e.list(), 5, "the next retry (1 s later) healing it")
        assert e.list() == [] and e.heal_failed_count() == 0
        [done] = [f for f in e.list(include_healed=True) if f.fault_id == bad.fault_id]
        assert done.state is FaultState.EXPIRED  # the state it was healing into
        assert audit[-1] == ("HealRetry", "EXPIRED")
    finally:
        e.close()


def test_shutdown_with_a_heal_that_fails_still_heals_the_rest():
    mech = FailingHeal()
    e = FaultEngine([mech], {}, LINKS.get)
    e.apply(raw())
    healed = e.close()
    assert [f.state for f in healed] == [FaultState.HEAL_FAILED]  # said, not raised


def test_renew_stays_within_the_policys_max_lease():
    e = FaultEngine([FakeMechanism()], {}, LINKS.get, policy=Policy(max_lease_s=60))
    try:
        f = e.apply(raw(lease_ms=10_000))
        with pytest.raises(PermissionDenied, match="max_lease_s: lease 120 s is over 60 s"):
            e.renew(f.fault_id, 120_000)
        e.renew(f.fault_id, 60_000)
    finally:
        e.close()
