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


def test_the_pytest_scorecard_and_the_cli_scorecard_agree_on_the_same_marks():
    """One definition of the spans and the data loss (recovery.Metrics): same marks, same figures."""
    from faultline.controller.run import recovery
    from faultline.controller.run.recovery import Mark

    t = RecoveryTimer(rto_target_s=3)
    t.started, t.detected, t.recovery_started, t.completed = 10 * S, 10 * S + S // 4, 12 * S, 13 * S + S // 2
    t.record_data(sent=200, received=190)
    cli = recovery.Metrics(3, 10 * S, Mark(10 * S + S // 4, "probe"), 12 * S, Mark(13 * S + S // 2, "probe"),
                           {"sent": 200, "received": 190})
    m = t.metrics
    assert (m.detection_time, m.recovery_time, m.time_after_heal, m.meets_rto, m.data_loss) == \
        (cli.detection_s, cli.recovery_s, cli.after_heal_s, cli.meets_rto, cli.data_loss_ratio) == \
        (0.25, 3.5, 1.5, False, 0.05)
