"""RecoveryTimer marks from an injector's notices: nested faults, manual marks winning."""

from faultline.controller.suite.recovery_timer import RecoveryTimer

S = 1_000_000_000


def test_nested_faults_start_at_the_first_and_recover_from_the_last_heal():
    t = RecoveryTimer(rto_target_s=5)
    t.fault_applied(10 * S)
    t.fault_applied(11 * S)
    t.fault_healed(12 * S)   # the inner one; the outer still holds
    t.fault_healed(14 * S)
    t.completed = 15 * S
    m = t.metrics
    assert m.recovery_time == 5.0 and m.time_after_heal == 1.0 and m.meets_rto


def test_a_mark_the_test_sets_wins():
    t = RecoveryTimer(rto_target_s=1)
    t.started, t.recovery_started = 9 * S, 13 * S
    t.fault_applied(10 * S)
    t.fault_healed(12 * S)
    t.completed = 14 * S
    m = t.metrics
    assert m.recovery_time == 5.0 and m.time_after_heal == 1.0 and not m.meets_rto
    assert m.detection_time is None and m.recovered_by == "test"
