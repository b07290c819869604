"""faultline's pytest plugin (entry point `pytest11`): the chaos suite's fixtures, with real
kernel faults underneath.

Fixtures: network_fault_injector, recovery_timer, state_validator, chaos_config,
chaos_scenario, faultline_hosts, chaos_ibkr_client (an ib_async client of the IB Gateway given by
--faultline-ibkr, with the faults IBKR users meet), faultline_ibkr (where that gateway is).
Markers: chaos, slow. Where the agents are: --faultline-lab
(a lab for the session; root), --faultline-agents NAME=HOST[:PORT],... (env FAULTLINE_AGENTS,
ini faultline_agents) or --faultline-hosts FILE (a scenario file's `hosts:` mapping: agent,
data addresses, interface, tags; env FAULTLINE_HOSTS, ini faultline_hosts); mTLS from
--faultline-tls-dir (env FAULTLINE_TLS_DIR, ini faultline_tls_dir). A setting that cannot work
stops the session with one line; a test that needs agents when none are configured skips,
saying how to give them; a fault the kernel cannot do (netem missing) skips with the agent's
reason. SIGTERM (a cancelled CI job) heals every fault as Ctrl-C does.

Wiring only: pytest loads this module in every run of a venv that has faultline, so it
imports nothing but pytest and the standard library; grpc, pyroute2 and YAML come in when a
fixture is first used. The suite's own names are in faultline.controller.suite.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from faultline.controller.env.hosts import Host
    from faultline.controller.suite.ibkr import ChaosIbkrClient, IbkrTarget
    from faultline.controller.suite.injector import FaultInjector
    from faultline.controller.suite.recovery_timer import RecoveryTimer
    from faultline.controller.suite.results import ScenarioResult
    from faultline.controller.suite.state import StateValidator

DEFAULT_LAB_HOSTS = "trader,gateway,broker"
IBKR_LAB_HOSTS = ("gateway", "ibserver")  # --faultline-ibkr lab: the TWS gateway and IB's back end

def _setting(config: pytest.Config, option: str, env: str, ini: str) -> str:
    """CLI, then environment, then ini."""
    return config.getoption(option) or os.environ.get(env, "") or config.getini(ini) or ""


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("faultline", "faultline: real kernel faults through faultline agents")
    g.addoption("--faultline-lab", action="store_true",
                help="bring up a lab (network namespaces, one agent each) for the session and take it down after; "
                     "needs root")
    g.addoption("--faultline-lab-hosts", default=None, metavar="NAMES",
                help=f"the lab's hosts (default {DEFAULT_LAB_HOSTS})")
    g.addoption("--faultline-agents", default=None, metavar="NAME=HOST[:PORT],...",
                help="real agents, port 7070 unless given (env FAULTLINE_AGENTS, ini faultline_agents)")
    g.addoption("--faultline-hosts", default=None, metavar="FILE",
                help="real hosts as a scenario file's `hosts:` mapping (agent, ipv4/ipv6: the data addresses, "
                     "interface, tags) (env FAULTLINE_HOSTS, ini faultline_hosts)")
    g.addoption("--faultline-tls-dir", default=None, metavar="DIR",
                help="mTLS: ca.pem, controller.pem, controller-key.pem (env FAULTLINE_TLS_DIR, ini faultline_tls_dir)")
    g.addoption("--faultline-target", default=None, metavar="HOST[:PORT]",
                help="what faults cut the other hosts from, unless a test says target=... "
                     "(env FAULTLINE_TARGET, ini faultline_target)")
    g.addoption("--faultline-on", default=None, metavar="NAMES",
                help="the agents that apply faults (default: all but the target's)")
    g.addoption("--faultline-config", default=None, metavar="PATH",
                help="resilience config for chaos_config and the RTO (default contracts/resilience_config.yaml)")
    g.addoption("--faultline-ibkr", default=None, metavar="HOST:PORT|lab",
                help="the IB Gateway / TWS API port chaos_ibkr_client connects to (a paper session: 4002), or "
                     "'lab' with --faultline-lab: the lab's TWS gateway and ibserver (env FAULTLINE_IBKR, ini "
                     "faultline_ibkr)")
    g.addoption("--faultline-ibkr-agent", default=None, metavar="NAME",
                help="the agent on the gateway's host, which applies the client's faults (default gateway)")
    g.addoption("--faultline-ibkr-upstream", default=None, metavar="HOST[:PORT]",
                help="IB's servers as the gateway host reaches them, for inject_upstream_outage "
                     "(the lab: ibserver:4001)")
    g.addoption("--faultline-json", default=None, metavar="PATH", help="write the chaos scenarios' results here")
    parser.addini("faultline_agents", "real agents: NAME=HOST[:PORT],...")
    parser.addini("faultline_hosts", "real hosts: a file with a scenario's hosts: mapping")
    parser.addini("faultline_tls_dir", "mTLS directory (ca.pem, controller.pem, controller-key.pem)")
    parser.addini("faultline_target", "default fault target: HOST[:PORT]")
    parser.addini("faultline_ibkr", "the IB Gateway chaos_ibkr_client connects to: HOST:PORT or lab")
    parser.addini("faultline_config", "resilience config path")


def _agent_settings(config: pytest.Config) -> tuple[bool, str, str, str]:
    return (bool(config.getoption("faultline_lab")),
            _setting(config, "faultline_agents", "FAULTLINE_AGENTS", "faultline_agents"),
            _setting(config, "faultline_hosts", "FAULTLINE_HOSTS", "faultline_hosts"),
            _setting(config, "faultline_tls_dir", "FAULTLINE_TLS_DIR", "faultline_tls_dir"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a chaos test (faults injected through faultline agents)")
    config.addinivalue_line("markers", "slow: a long chaos case (e.g. a 30 s partition)")
    config.stash[RESULTS] = []
    settings = _agent_settings(config)
    if any(settings):  # only then: a run without faultline settings imports nothing more
        from faultline.controller.suite.where import SettingsError, resolve

        try:
            config.stash[AGENTS] = resolve(*settings)
        except SettingsError as e:
            raise pytest.UsageError(f"faultline: {e}") from None


RESULTS = pytest.StashKey[list["ScenarioResult"]]()
AGENTS = pytest.StashKey["Agents | None"]()
HTML = pytest.StashKey[list[str]]()


def attach_html(node: pytest.Item, fragment: str) -> None:
    """Show this HTML in the test's row of a pytest-html report (--html); nothing without one."""
    node.stash.setdefault(HTML, []).append(fragment)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    fragments = item.stash.get(HTML, [])
    if call.when == "call" and fragments and item.config.pluginmanager.hasplugin("html"):
        from pytest_html import extras

        report.extras = [*getattr(report, "extras", []), *(extras.html(f) for f in fragments)]
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    """The RECOVERY SCORECARD at the top of a pytest-html report."""
    results = session.config.stash.get(RESULTS, [])
    if results:
        from faultline.controller.suite.results import scorecard

        prefix.append(f"<pre>{html.escape(scorecard(results))}</pre>")


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("faultline_lab"):
        where = f"lab ({config.getoption('faultline_lab_hosts') or DEFAULT_LAB_HOSTS})"
    else:
        where = _setting(config, "faultline_agents", "FAULTLINE_AGENTS", "faultline_agents") or \
            _setting(config, "faultline_hosts", "FAULTLINE_HOSTS", "faultline_hosts") or "no agents"
    target = _setting(config, "faultline_target", "FAULTLINE_TARGET", "faultline_target") or "-"
    return f"faultline: {where}; target {target}"


# -- fixtures -----------------------------------------------------------------
@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> dict[str, float | int]:
    """rto_target_s, max_data_loss_ratio, max_retry_attempts, base/max_retry_delay_s,
    connection/request_timeout_s, rate_limit_per_minute from the resilience config."""
    from faultline.controller.model import config as resilience

    path = _setting(pytestconfig, "faultline_config", "FAULTLINE_CONFIG", "faultline_config")
    return resilience.load(Path(path)).chaos_config() if path else resilience.load().chaos_config()


@pytest.fixture(scope="session")
def faultline_hosts(pytestconfig: pytest.Config) -> Iterator[dict[str, Host]]:
    """The agents, connected, with their clocks' offsets: the lab's or the given ones. While they
    are, SIGTERM heals every fault as Ctrl-C does (raised as an interrupt in the test)."""
    from faultline.controller.env.hosts import connect, lab_endpoints
    from faultline.controller.run.interrupt import sigterm_as_interrupt

    agents = pytestconfig.stash.get(AGENTS, None)
    if agents is None:
        pytest.skip("no faultline agents: pass --faultline-lab (root), --faultline-agents NAME=HOST[:PORT],... "
                    "or --faultline-hosts FILE")
    lab = None
    made = False
    endpoints = agents.endpoints
    if endpoints is None:
        from faultline.controller.env.lab import Lab

        names = [n.strip() for n in (pytestconfig.getoption("faultline_lab_hosts") or DEFAULT_LAB_HOSTS).split(",")]
        if _ibkr_setting(pytestconfig) == "lab":
            names += [n for n in IBKR_LAB_HOSTS if n not in names]
        lab = Lab()
        made = lab.load() is None
        endpoints = lab_endpoints(lab.up(names), names)
    from faultline.controller.agents.errors import AgentError

    with sigterm_as_interrupt():
        try:
            hosts = {n: connect(ep, tls_dir=agents.tls_dir) for n, ep in endpoints.items()}
        except AgentError as e:  # unreachable, a TLS mistake: the one line that says which, no traceback
            pytest.fail(f"faultline: {e}", pytrace=False)
        yield hosts
        for h in hosts.values():
            h.client.close()
    if lab is not None and made:
        lab.down()


@pytest.fixture
def _faultline_listeners() -> list[object]:
    return []


def _skip(reason: str) -> NoReturn:
    pytest.skip(f"the kernel cannot do this fault: {reason}")


@pytest.fixture
def network_fault_injector(faultline_hosts: dict[str, Host], pytestconfig: pytest.Config,
                           _faultline_listeners: list[object]) -> FaultInjector:
    """inject_disconnect / inject_latency / inject_packet_loss context managers on the agents."""
    from faultline.controller.suite.injector import FaultInjector

    target = _setting(pytestconfig, "faultline_target", "FAULTLINE_TARGET", "faultline_target")
    on = [n.strip() for n in (pytestconfig.getoption("faultline_on") or "").split(",") if n.strip()]
    return FaultInjector(faultline_hosts, target, on, _faultline_listeners, unavailable=_skip)


@pytest.fixture
def recovery_timer(request: pytest.FixtureRequest, chaos_config: dict[str, float | int],
                   _faultline_listeners: list[object]) -> Iterator[RecoveryTimer]:
    """A RecoveryTimer with the config's RTO; the injector tells it when faults go in and out.
    timer.follow(HOST, PORT) takes its marks from that agent's kernel events."""
    from faultline.controller.suite.recovery_timer import RecoveryTimer

    timer = RecoveryTimer(float(chaos_config["rto_target_s"]),
                          hosts=lambda name: request.getfixturevalue("faultline_hosts")[name])
    _faultline_listeners.append(timer)
    yield timer
    timer.close()


@pytest.fixture
def state_validator() -> StateValidator:
    """Order integrity and positions: record intents, fills and positions; get_violations()."""
    from faultline.controller.suite.state import StateValidator

    return StateValidator()


@pytest.fixture
def chaos_scenario(request: pytest.FixtureRequest, recovery_timer: RecoveryTimer,
                   state_validator: StateValidator) -> Callable[[str, Any], Any]:
    """with chaos_scenario("Gateway disconnect", FaultType.NETWORK_DISCONNECT): ...
    prints the scenario block at the end and adds the test to the RECOVERY SCORECARD."""

    from faultline.controller.suite.results import ScenarioResult, scenario_text

    @contextmanager
    def scenario(name: str, fault_type: Any) -> Iterator[RecoveryTimer]:
        kind = str(getattr(fault_type, "value", fault_type))  # a FaultType or its name
        error = ""
        try:
            yield recovery_timer
        except BaseException as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            m = recovery_timer.metrics
            violations = state_validator.get_violations()
            passed = not error and m.meets_rto and not violations and not m.sent_nothing
            result = ScenarioResult(name, kind, request.node.nodeid, passed, m, violations, error)
            request.config.stash[RESULTS].append(result)
            print("\n" + scenario_text(result))
            attach_html(request.node, f"<pre>{html.escape(scenario_text(result))}</pre>")

    return scenario


def _ibkr_setting(config: pytest.Config) -> str:
    return _setting(config, "faultline_ibkr", "FAULTLINE_IBKR", "faultline_ibkr")


@pytest.fixture(scope="session")
def faultline_ibkr(pytestconfig: pytest.Config, request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[IbkrTarget]:
    """The IB Gateway under test: --faultline-ibkr HOST:PORT (and the agent on its host), or
    'lab': the lab's TWS gateway and ibserver, started for the session."""
    from faultline.controller.suite.ibkr import IbkrTarget

    where = _ibkr_setting(pytestconfig)
    agent = pytestconfig.getoption("faultline_ibkr_agent") or "gateway"
    upstream = pytestconfig.getoption("faultline_ibkr_upstream") or ""
    if not where:
        pytest.skip("no IB gateway: pass --faultline-ibkr HOST:PORT (with its host's agent) "
                    "or --faultline-lab --faultline-ibkr lab")
    if where != "lab":
        yield IbkrTarget(where, agent, upstream)
        return
    if not pytestconfig.getoption("faultline_lab"):
        pytest.skip("--faultline-ibkr lab needs --faultline-lab (root)")
    from faultline.controller.env.ibkr_lab import IbkrLab
    from faultline.controller.env.lab import Lab

    request.getfixturevalue("faultline_hosts")  # brings the lab up, with gateway and ibserver
    state = Lab().load()
    if state is None:
        pytest.fail("the lab is not up")
    with IbkrLab(state, tmp_path_factory.mktemp("ibkr")) as lab:
        yield IbkrTarget(lab.address, "gateway", upstream or lab.upstream)


@pytest.fixture
def chaos_ibkr_client(faultline_ibkr: IbkrTarget, network_fault_injector: FaultInjector,
                      chaos_config: dict[str, float | int]) -> Iterator[ChaosIbkrClient]:
    """Connected when a test gets it (client.ib; client.connect() after a disconnect connects
    again); inject_disconnect(mode="reset"|"disconnect"),
    inject_timeout_on_next_request(), inject_slow_response(delay_ms=...), inject_upstream_outage(
    duration_s=...): real kernel faults by the agent on the gateway's host. client.errors: IB's
    errors (code, text, t_ns). Every fault is healed and the client disconnected after the test."""
    from faultline.controller.suite.ibkr import ChaosIbkrClient

    client = ChaosIbkrClient(network_fault_injector, faultline_ibkr, chaos_config)
    try:
        client.connect()  # the chaos suite's snippets start with a fault: the connection it aims at exists
        yield client
    finally:
        client.close()


# -- the end of the session -------------------------------------------------------
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, [])
    if not results:
        return
    from faultline.controller.suite.results import scorecard, write_json

    terminalreporter.write_line("")
    for line in scorecard(results).splitlines():
        terminalreporter.write_line(line)
    path = config.getoption("faultline_json")
    if path:
        write_json(results, Path(path))
        terminalreporter.write_line(f"faultline: chaos results in {path}")
