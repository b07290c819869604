"""The pytest plugin, run by pytester in a subprocess against two real gRPC agents whose
engines sit on a fake mechanism (the kernel side is proven in tests/lab/test_plugin_lab.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fakes import fake_agent

pytest_plugins = ["pytester"]


@pytest.fixture
def agents():
    with fake_agent(host="127.0.0.1") as (trader, t_engine), fake_agent(host="127.0.0.2") as (gateway, g_engine):
        yield f"trader={trader},gateway={gateway}", t_engine, g_engine


def run(pytester, agents_opt, *extra):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--faultline-agents={agents_opt}",
                                         "--faultline-target=gateway:4002", *extra)


def test_disconnect_is_applied_for_its_duration_then_healed(pytester, agents):
    opt, trader, gateway = agents
    pytester.makepyfile("""
        import time

        def test_it(network_fault_injector, faultline_hosts):
            t0 = time.monotonic()
            with network_fault_injector.inject_disconnect(duration_s=0.4) as fault:
                [f] = faultline_hosts["trader"].client.list()
                assert list(f.spec.selector.peer_cidrs) == ["127.0.0.2/32"]
                assert list(f.spec.selector.ports) == [4002] and f.spec.kind == 1
                assert faultline_hosts["gateway"].client.list() == []   # not on the target itself
                assert [a.host for a in fault.applied] == ["trader"]
            assert time.monotonic() - t0 >= 0.4                        # the block was shorter: it waited
            assert faultline_hosts["trader"].client.list() == []
            assert fault.final == {"trader": (10, 3)} and fault.healed_ns > fault.applied_ns
    """)
    run(pytester, opt).assert_outcomes(passed=1)
    assert trader.list() == [] and len(trader.list(include_healed=True)) == 1
    assert gateway.list(include_healed=True) == []


def test_a_body_that_raises_still_heals_at_once(pytester, agents):
    opt, trader, _ = agents
    pytester.makepyfile("""
        import time

        def test_it(network_fault_injector):
            t0 = time.monotonic()
            try:
                with network_fault_injector.inject_disconnect(duration_s=30):
                    raise ValueError("the system under test broke")
            finally:
                assert time.monotonic() - t0 < 5
    """)
    result = run(pytester, opt)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: the system under test broke*"])
    assert trader.list() == [] and [f.state.name for f in trader.list(include_healed=True)] == ["HEALED"]


def test_loss_as_a_fraction_nesting_and_clear_refusals(pytester, agents):
    opt, trader, _ = agents
    pytester.makepyfile("""
        import pytest
        from faultline.controller.suite.injector import InjectionRefused

        def test_nested(network_fault_injector, faultline_hosts):
            inj = network_fault_injector
            with inj.inject_packet_loss(loss_probability=0.2), inj.inject_disconnect(duration_s=0.1, target="gateway"):
                kinds = sorted((f.spec.kind, f.spec.loss.percent) for f in faultline_hosts["trader"].client.list())
                assert kinds == [(1, 0.0), (2, 20.0)]
            assert faultline_hosts["trader"].client.list() == []

        def test_refusals(network_fault_injector):
            with pytest.raises(InjectionRefused, match=r"loss_probability: a fraction 0 < p <= 1; got 1.5"):
                with network_fault_injector.inject_packet_loss(loss_probability=1.5):
                    pass
            with pytest.raises(InjectionRefused, match="neither a host"):
                with network_fault_injector.inject_disconnect(duration_s=1, target="nowhere:1"):
                    pass
    """)
    run(pytester, opt).assert_outcomes(passed=2)
    assert trader.list() == []


def test_latency_without_netem_skips_with_the_agents_reason(pytester, agents):
    opt, _, _ = agents
    pytester.makepyfile("""
        def test_it(network_fault_injector):
            with network_fault_injector.inject_latency(latency_ms=100, duration_s=1):
                raise AssertionError("must not run: the kernel cannot delay")
    """)
    result = run(pytester, opt, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the kernel cannot do this fault: delay: trader: *no netem*"])


def test_without_agents_the_fixtures_skip_saying_how(pytester):
    pytester.makepyfile("""
        def test_it(network_fault_injector):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*--faultline-lab (root), --faultline-agents NAME=HOST[[]:PORT[]]*"])


def test_a_hosts_file_gives_each_host_its_data_address_and_interface(pytester, agents, tmp_path):
    """--faultline-hosts: the agent answers on one address, the host's traffic runs on another."""
    opt, trader, _ = agents
    t_agent, g_agent = (item.split("=")[1] for item in opt.split(","))
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(f"hosts:\n  trader: {{agent: '{t_agent}', ipv4: 10.9.0.1, interface: eth1, tags: [app]}}\n"
                     f"  gateway: {{agent: '{g_agent}', ipv4: 10.9.0.2, interface: eth1}}\n")
    pytester.makepyfile("""
        def test_it(network_fault_injector, faultline_hosts):
            with network_fault_injector.inject_disconnect(duration_s=0.1, target="gateway:4002"):
                [f] = faultline_hosts["trader"].client.list()
                assert list(f.spec.selector.peer_cidrs) == ["10.9.0.2/32"]
                assert f.spec.selector.interface == "eth1"
            assert faultline_hosts["trader"].endpoint.tags == ("app",)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--faultline-hosts={hosts}")
    result.assert_outcomes(passed=1)
    assert trader.list() == [] and len(trader.list(include_healed=True)) == 1


@pytest.mark.parametrize("setting, says", [
    (("--faultline-hosts={tmp}/hosts.yaml",), "--faultline-hosts: {tmp}/hosts.yaml:2: hosts.db1.agent: HOST, "
                                              "HOST:PORT or [[]IPv6[]]:PORT (port 1-65535*"),
    (("--faultline-hosts={tmp}/none.yaml",), "--faultline-hosts: {tmp}/none.yaml: No such file or directory"),
    (("--faultline-agents=db1=10.1.0.5:99999",), "--faultline-agents: 'db1=10.1.0.5:99999': '10.1.0.5:99999': "
                                                 "port 99999 outside 1-65535"),
    (("--faultline-agents=db1=10.1.0.5", "--faultline-hosts={tmp}/hosts.yaml"),
     "--faultline-agents and --faultline-hosts: give one of them*"),
    (("--faultline-agents=db1=10.1.0.5", "--faultline-tls-dir={tmp}"),
     "--faultline-tls-dir: TLS directory {tmp} lacks ca.pem*"),
])
def test_a_bad_setting_is_one_usage_line_before_any_test(pytester, tmp_path, setting, says):
    (tmp_path / "hosts.yaml").write_text("hosts:\n  db1: {agent: '10.1.0.6:99999', ipv4: 10.1.0.6}\n")
    pytester.makepyfile("def test_it(network_fault_injector):\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *(s.format(tmp=tmp_path) for s in setting))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: faultline: {says.format(tmp=tmp_path)}"])
    assert "Traceback" not in result.stderr.str()


def test_recovery_timer_marks_and_rto(pytester, tmp_path):
    cfg = tmp_path / "resilience.yaml"
    cfg.write_text("recovery: {rto_target_s: 0.2}\n")
    pytester.makepyfile("""
        import time
        from faultline.controller.suite import RecoveryTimer

        def test_marks(recovery_timer):
            with recovery_timer as t:
                time.sleep(0.05); t.mark_detected()
                t.mark_recovery_started()
                time.sleep(0.05); t.mark_recovery_completed()
                t.record_data(sent=100, received=97)
            m = t.metrics
            assert 0.04 < m.detection_time < 0.2 and 0.09 < m.recovery_time < 0.3 and m.meets_rto
            assert m.rto_target == 0.2 and abs(m.data_loss - 0.03) < 1e-9
            assert str(m).startswith("detection 0.0") and "RTO 0.2s met" in str(m) and "data loss 3.00%" in str(m)

        def test_past_the_target(recovery_timer):
            with recovery_timer as t:
                time.sleep(0.3)
                t.mark_recovery_completed()
            assert t.metrics.meets_rto is False and "MISSED" in str(t.metrics)

        def test_class_alone():
            t = RecoveryTimer(rto_target_s=30)
            assert t.metrics.recovery_time is None and not t.metrics.meets_rto
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--faultline-config={cfg}").assert_outcomes(passed=3)


def test_state_validator_names_each_violation(pytester):
    pytester.makepyfile("""
        def test_it(state_validator):
            sent = [{"client_order_id": "ORD-1"}, {"client_order_id": "ORD-2"}, {"client_order_id": "ORD-3"}]
            received = [{"client_order_id": "ORD-1"}, {"client_order_id": "ORD-1"}, {"client_order_id": "ORD-9"}]
            assert not state_validator.validate_order_integrity(sent_orders=sent, received_orders=received)
            assert state_validator.validate_position_consistency(expected_position={"AAPL": 100},
                                                                 actual_position={"AAPL": 100})
            assert not state_validator.validate_position_consistency(expected_position={"AAPL": 100, "MSFT": -5},
                                                                     actual_position={"AAPL": 90})
            assert state_validator.get_violations() == [
                "lost: ORD-2: sent, never received",
                "lost: ORD-3: sent, never received",
                "duplicate: ORD-1: received 2 times",
                "unknown: ORD-9: received 1 time(s), never sent",
                "position: AAPL: expected 100, actual 90",
                "position: MSFT: expected -5, actual 0",
            ]
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_chaos_config_and_markers(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos
        @pytest.mark.slow
        def test_it(chaos_config):
            # The chaos suite README's chaos_config, exactly (issue 21 must-show 3).
            assert chaos_config == {"rto_target_s": 30.0, "max_data_loss_ratio": 0.05, "max_retry_attempts": 5,
                                    "base_retry_delay_s": 1.0, "max_retry_delay_s": 30.0,
                                    "connection_timeout_s": 10.0, "request_timeout_s": 5.0,
                                    "rate_limit_per_minute": 100}
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers").assert_outcomes(passed=1)


def test_chaos_scenario_block_and_scorecard(pytester, tmp_path):
    out = tmp_path / "chaos.json"
    pytester.makepyfile("""
        import time
        from faultline.controller.suite import FaultType

        def test_fast(chaos_scenario):
            with chaos_scenario("Broker disconnect", FaultType.NETWORK_DISCONNECT) as timer:
                timer.start(); timer.mark_detected(); timer.mark_recovery_started(); timer.mark_recovery_completed()

        def test_orders_lost(chaos_scenario, state_validator):
            with chaos_scenario("Gateway partition", FaultType.NETWORK_PARTITION) as timer:
                timer.start(); timer.mark_recovery_completed()
                state_validator.validate_order_integrity(sent_orders=["A-1", "A-2"], received_orders=["A-1"])
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", f"--faultline-json={out}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "CHAOS SCENARIO: Broker disconnect", "Fault Type: NETWORK_DISCONNECT", "Recovery Metrics:",
        "  Meets RTO (≤30s): ✓ YES", "SCENARIO COMPLETED",
        "CHAOS SCENARIO: Gateway partition", "  VIOLATION: lost: A-2: sent, never received", "SCENARIO FAILED",
        "RECOVERY SCORECARD", "*✓ PASS  Broker disconnect*", "*✗ FAIL  Gateway partition*",
        "OVERALL: 1 passed, 1 failed", "Success Rate: 50.0%",
    ])
    saved = json.loads(out.read_text())
    assert [r["name"] for r in saved] == ["Broker disconnect", "Gateway partition"]
    assert saved[1]["violations"] == ["lost: A-2: sent, never received"] and saved[1]["passed"] is False


def test_the_html_report_has_the_scorecard_on_top_and_each_scenario_block(pytester, tmp_path):
    """pytest-html (--html --self-contained-html): the RECOVERY SCORECARD before the results,
    each chaos test's CHAOS SCENARIO block in its own row."""
    pytest.importorskip("pytest_html")
    report = tmp_path / "chaos-report.html"
    pytester.makepyfile("""
        from faultline.controller.suite import FaultType

        def test_disconnect(chaos_scenario):
            with chaos_scenario("Broker disconnect", FaultType.NETWORK_DISCONNECT) as timer:
                timer.start(); timer.mark_recovery_completed()

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--html={report}", "--self-contained-html")
    result.assert_outcomes(passed=2)
    page = report.read_text()
    assert page.count("RECOVERY SCORECARD") == 1 and "✓ PASS  Broker disconnect" in page
    assert "CHAOS SCENARIO: Broker disconnect" in page  # the row's extra (in the report's JSON blob)
    assert page.index("RECOVERY SCORECARD") < page.index("data-jsonblob")  # the summary, above the table


def test_no_scorecard_without_chaos_scenarios(pytester):
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "RECOVERY SCORECARD" not in result.stdout.str()


HEAVY = ("grpc", "pyroute2", "bcc", "yaml", "google")


def test_the_plugin_imports_nothing_heavy_until_a_fixture_is_used(tmp_path):
    """Issue 20: pytest loads the plugin in every run of a venv that has faultline; an unrelated
    project's run must not pay for grpc, pyroute2, bcc or YAML. A test using chaos_config does."""
    probe = ("import sys, pytest\n"
             "pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1]])\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
             "print('faultline.controller.pytest_plugin' in sys.modules)\n")
    (tmp_path / "test_unrelated.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    (tmp_path / "test_chaos.py").write_text("def test_config(chaos_config):\n    assert chaos_config['rto_target_s']\n")

    def loaded(test: str) -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-c", probe, test], cwd=tmp_path, capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip().splitlines()
        return out[-2], out[-1]

    assert loaded("test_unrelated.py") == ("[]", "True")  # the plugin is loaded, and nothing heavy
    assert loaded("test_chaos.py") == ("['yaml']", "True")  # the fixture brings in what it needs


def test_an_agent_that_cannot_be_reached_is_one_line_not_a_traceback(pytester):
    pytester.makepyfile("def test_it(network_fault_injector):\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--faultline-agents=db1=127.0.0.1:1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*faultline: 127.0.0.1:1: UNAVAILABLE: cannot connect to 127.0.0.1:1*"])
    assert "Traceback" not in result.stdout.str()
