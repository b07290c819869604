"""Recovery marks and verdicts from observed events; the report formats built on them."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from faultline.controller.model.scenario import Targets
from faultline.controller.run import recovery, report
from faultline.controller.run.probes import ProbeResult
from faultline.controller.run.recovery import KernelEvent
from faultline.controller.run.runner import Outcome
from tests.unit.test_scenario import GOOD, load

S = 1_000_000_000
TARGETS = Targets(rto_s=5.0, max_data_loss_ratio=0.0, max_detection_s=1.0)


def state(t, old, new, sock=7):
    return KernelEvent(t, "trader", "STATE", sock, old, new, "10.0.0.1:40000 -> 10.0.0.2:4002")


def retrans(t, sock=7):
    return KernelEvent(t, "trader", "RETRANSMIT", sock, "", "ESTABLISHED")


def sample(t, ok):
    return ProbeResult("flow", ok, t, t + 1000, "ok" if ok else "down")


def test_detection_is_the_first_symptom_after_inject():
    events = [retrans(9 * S), state(10 * S + 5, "SYN_SENT", "ESTABLISHED", 8),
              retrans(10 * S + 300_000_000), state(10 * S + 500_000_000, "ESTABLISHED", "FIN_WAIT1")]
    m = recovery.detection(10 * S, events, [sample(10 * S + 200_000_000, True), sample(10 * S + 400_000_000, False)])
    assert m is not None and m.t_ns == 10 * S + 300_000_000 and "RETRANSMIT" in m.source


def test_a_broken_flow_recovers_when_a_connection_is_established_after_the_heal():
    events = [state(1 * S, "SYN_SENT", "ESTABLISHED"), state(3 * S, "ESTABLISHED", "FIN_WAIT1"),
              state(4 * S, "SYN_SENT", "CLOSE", 9), state(6 * S, "SYN_SENT", "ESTABLISHED", 10)]
    m = recovery.flow_recovery(5 * S, events)
    assert m is not None and m.t_ns == 6 * S


def test_a_flow_that_never_broke_recovers_at_the_heal():
    events = [state(1 * S, "SYN_SENT", "ESTABLISHED"), retrans(3 * S)]
    assert recovery.flow_recovery(5 * S, events).t_ns == 5 * S


def test_recovered_only_when_every_signal_is_back():
    events = [state(1 * S, "SYN_SENT", "ESTABLISHED"), state(2 * S, "ESTABLISHED", "CLOSE"),
              state(6 * S, "SYN_SENT", "ESTABLISHED", 9)]
    samples = [sample(1 * S, True), sample(3 * S, False), sample(5 * S + 1, False), sample(7 * S, True)]
    m = recovery.compute(TARGETS, 1 * S + 500_000_000, 5 * S, events, samples, {"sent": 100, "received": 100})
    assert m.t_recovered.t_ns == 7 * S + 1000  # the probe came back after the flow
    assert m.detection_s == 0.5 and round(m.recovery_s, 6) == 5.500001 and m.meets_rto is False
    m = recovery.compute(TARGETS, 1 * S, 5 * S, events, [sample(3 * S, False)], {})
    assert m.t_recovered is None and not m.meets_rto


def test_a_symptom_after_recovery_is_not_the_detection():
    """A paused consumer leaves no kernel symptom; its flow closing at the run's end came after
    recovery: no detection (and no negative outage), not a detection 11 s late."""
    events = [state(1 * S, "SYN_SENT", "ESTABLISHED"), state(12 * S, "ESTABLISHED", "FIN_WAIT1")]
    m = recovery.compute(TARGETS, 1 * S, 5 * S, events, [sample(6 * S, True)], {})
    assert m.t_recovered.t_ns == 6 * S + 1000
    assert m.t_detect is None and m.detection_s is None and m.outage_s is None


def test_verdicts_name_each_target():
    m = recovery.compute(TARGETS, 1 * S, 3 * S, None, [sample(S + S // 2, False), sample(4 * S, True)],
                         {"sent": 200, "received": 190})
    v = {x.name: x for x in recovery.verdicts(m, TARGETS)}
    assert v["RTO"].ok and "recovered in 3.000 s, target 5 s" in v["RTO"].detail
    assert v["detection"].ok
    assert not v["data loss"].ok and v["data loss"].detail.startswith("5.00% (10 of 200)")


def test_counter_targets_give_one_verdict_each_with_the_bounds():
    t = Targets(5.0, 0.0, counters={"rate_limited": (1, None), "lag_ms": (None, 100), "drain_ms": (0, 50)})
    m = recovery.compute(t, 1 * S, 3 * S, None, [sample(4 * S, True)], {"rate_limited": 0, "lag_ms": 80})
    v = {x.name: x for x in recovery.verdicts(m, t)}
    assert not v["rate_limited"].ok and v["rate_limited"].detail == "0, expected >= 1"
    assert v["lag_ms"].ok and v["lag_ms"].detail == "80, expected <= 100"
    assert not v["drain_ms"].ok and v["drain_ms"].detail == "not reported, expected >= 0 and <= 50"


def outcome(tmp_path, recovered_at, rto=2.0):
    scn = load(tmp_path, GOOD.replace("title: t", f"title: partition {recovered_at}").replace(
        "recovery:", f"targets: {{rto_s: {rto}}}\nrecovery:"))
    m = recovery.compute(scn.targets, 1 * S, 4 * S, None, [sample(2 * S, False), sample(recovered_at, True)],
                         {"sent": 10, "received": 10, "duplicates": 2})
    journal = {"clocks": {"trader": {"offset_ns": 2_000_000_000, "uncertainty_ns": 50_000}},
               "hosts": {"trader": {"agent": "10.0.0.1:7070"}}, "t0_ns": 0, "started_ns": 0, "ended_ns": 9 * S,
               "steps": [{"step": 0, "what": "partition trader | gateway", "planned_ns": 1 * S, "skew_ns": 400_000,
                          "applied": [{"host": "trader", "fault_id": "f-1", "applied_ns": 1 * S + 300_000}]}],
               "probe_samples": [], "kernel_events": [], "activities": []}
    return Outcome(scn, m, recovery.verdicts(m, scn.targets), journal)


def test_human_report_and_scorecard(tmp_path):
    bad, good = outcome(tmp_path, 6 * S), outcome(tmp_path, 4 * S + S // 2, rto=30)
    text = report.human(bad)
    for line in ("CHAOS SCENARIO: partition 6000000000", "Fault Type: COMBINED", "Recovery Metrics:",
                 "  Detection Time: 1.000s (probe flow failed: down)", "  Recovery Time: 5.000s (2.000s after heal)",
                 "  Meets RTO (≤2s): ✗ NO", "  RTO VIOLATION: recovery took 5.000s, target 2s",
                 "  Data Loss: 0.00% (0 of 10 messages; 2 duplicate(s) discarded by the receiver)",
                 "SCENARIO FAILED: RTO"):
        assert line in text.splitlines(), (line, text)
    assert "  Meets RTO (≤30s): ✓ YES" in report.human(good) and "SCENARIO COMPLETED" in report.human(good)
    card = report.scorecard([bad, good]).splitlines()
    assert "RECOVERY SCORECARD" in card and "OVERALL: 1 passed, 1 failed" in card and "Success Rate: 50.0%" in card


def test_junit_has_a_case_per_assertion_and_the_failures(tmp_path):
    text = report.junit([outcome(tmp_path, 6 * S), outcome(tmp_path, 4 * S + S // 2, rto=30)])
    xml = ET.fromstring(text.split("?>", 1)[1])
    suites = xml.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["1", "0"]
    failure = suites[0].find("testcase[@name='RTO']/failure")
    assert failure is not None and "target 2 s" in failure.get("message")


def test_timeline_is_one_self_contained_page(tmp_path):
    page = report.timeline_html(outcome(tmp_path, 6 * S))
    assert page.startswith("<!doctype html>") and "<svg" in page and "RTO 2s" in page
    assert "src=" not in page and "href=" not in page  # nothing fetched from elsewhere


def test_rto_counted_from_the_heal_when_the_scenario_says_so():
    t = recovery.Targets(rto_s=30, max_data_loss_ratio=0, rto_from="heal")
    m = recovery.compute(t, 1 * S, 31 * S, None, [sample(32 * S, True)], {})
    assert m.recovery_s > 30 and m.meets_rto
    v = {x.name: x for x in recovery.verdicts(m, t)}
    assert v["RTO"].ok and "after the heal" in v["RTO"].detail
    late = recovery.compute(t, 1 * S, 31 * S, None, [sample(62 * S, True)], {})
    assert not late.meets_rto


def test_data_loss_over_nothing_sent_fails_saying_so():
    m = recovery.compute(TARGETS, 0, 1 * S, [], None, {"sent": 0, "received": 0})
    [loss] = [v for v in recovery.verdicts(m, TARGETS) if v.name == "data loss"]
    assert not loss.ok and "the workload sent nothing" in loss.detail
    assert m.data_loss_ratio is None and m.sent_nothing
    sent = recovery.compute(TARGETS, 0, 1 * S, [], None, {"sent": 10, "received": 10})
    assert [v.ok for v in recovery.verdicts(sent, TARGETS) if v.name == "data loss"] == [True]


def test_network_and_application_detection_are_kept_apart_and_labelled():
    t0 = 10 * S
    events = [retrans(t0 + 200_000_000), state(t0 + 6 * S, "SYN_SENT", "ESTABLISHED", 9)]
    samples = [sample(t0 + 1_900_000_000, False), sample(t0 + 6 * S, True)]
    m = recovery.compute(TARGETS, t0, t0 + 5 * S, events, samples, {})
    assert m.since_inject_s(m.t_detect_network) == 0.2 and abs(m.since_inject_s(m.t_detect_app) - 1.9) < 1e-5
    assert m.t_detect == m.t_detect_network
    text = "\n".join(report.metrics_lines(
        m.detection_s, m.t_detect.source, m.outage_s, m.recovery_s, m.after_heal_s, 5.0, m.meets_rto, "-",
        detections=[("network detection (kernel)", m.since_inject_s(m.t_detect_network), m.t_detect_network.source),
                    ("application detection (probe)", m.since_inject_s(m.t_detect_app), m.t_detect_app.source)]))
    assert "    network detection (kernel): 0.200s (kernel: trader: RETRANSMIT" in text
    assert "    application detection (probe): 1.900s (probe flow failed: down)" in text
