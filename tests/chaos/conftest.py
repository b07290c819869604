"""The chaos suite: the trading lab's scenarios run for real, one lab per scenario.

    pytest tests/chaos -m chaos            (slow marks the 30 s cases)

The latency cases (marked netem) need sch_netem: where the kernel lacks it they skip here
and the VM stage runs them (`make test-vm`: `pytest tests/chaos -m netem` in Debian's
kernel), sharing one lab there because each agent's probes take ~30 s to compile under TCG.

Each test prints its scenario's block and its category's Key Metrics (a module's CATEGORY);
each scenario's journal, JUnit and timeline go to build/chaos/<scenario>/. At the end: the
RECOVERY SCORECARD, build/chaos/results.json (every outcome with all sixteen Key Metrics) and
the Production Readiness Checklist judged from it (`faultline readiness` on that file).
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultline.controller.cli.demo import why_no_netem
from faultline.controller.env.ibkr_lab import IbkrLab
from faultline.controller.env.lab import Lab, LabConfig
from faultline.controller.model import config as resilience
from faultline.controller.model import scenario
from faultline.controller.pytest_plugin import attach_html
from faultline.controller.run import report, runner
from faultline.controller.suite import key_metrics, readiness, results
from faultline.controller.suite.ibkr import IbkrTarget
from faultline.examples.trading import LAB_CONFIG
from testkit.netns import why_no_lab

IN_VM = bool(os.environ.get("FAULTLINE_VM_OUT"))  # the VM stage (make test-vm) runs the latency cases
# Inside the VM the checkout is read-only: reports go where the VM brings files out.
OUT = Path(os.environ["FAULTLINE_VM_OUT"]) / "chaos" if IN_VM else Path("build/chaos")
# Under TCG each agent compiles its probes in ~30 s, four at once on two CPUs.
LAB = LabConfig(ready_timeout_s=300) if IN_VM else LabConfig()
TRADING_HOSTS = ["trader", "gateway", "broker", "risk", "ibserver"]  # contracts/scenarios/trading/workload.yaml's lab
TRADING = Path(__file__).resolve().parents[2] / "contracts" / "scenarios" / "trading"
# IB in the lab (test_ibkr_resilience's chaos_ibkr_client cases): a lab of its own, beside the
# scenarios' (its own bridge and subnet), so that neither ever reuses or tears down the other.
IBKR_LAB = LabConfig(prefix="fib", subnet4="10.79.0.0/24", subnet6="fd79::/64", ready_timeout_s=LAB.ready_timeout_s)
IBKR_HOSTS = ["gateway", "ibserver", "trader"]
OUTCOMES: list[runner.Outcome] = []
RUNS: dict[Path, runner.Outcome] = {}  # each scenario file runs once per session, judged by several tests


@pytest.fixture(scope="session")
def shared_lab():
    """In the VM, one lab for every scenario (the runner reuses a lab that is up); elsewhere none."""
    if not IN_VM or why_no_lab():
        yield
        return
    lab = Lab(LAB)
    lab.down()
    lab.up(TRADING_HOSTS)
    yield
    lab.down()


@pytest.fixture(scope="module")
def ibkr_lab():
    """The lab's TWS gateway and ibserver in namespaces of their own (and a trader host), for
    the module: each case starts from a connected client and every fault healed."""
    _need_lab()
    lab = Lab(IBKR_LAB)
    lab.down()  # what a killed earlier run left
    # A fresh gateway: one started on an earlier run's executions.jsonl would hold its fills
    # (the trader's refs T000001... again), and "executed once" would count them.
    shutil.rmtree(OUT / "ibkr", ignore_errors=True)
    try:
        state = lab.up(IBKR_HOSTS)
        with IbkrLab(state, OUT / "ibkr") as ib:
            yield ib
    finally:
        lab.down()


@dataclass
class TraderRun:
    """The ib_async trader (examples/trading/tws/trader.py) on the IB lab's trader host."""

    dir: Path
    gateway_dir: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        """SIGTERM: no new orders, what is in flight filled, then exit 0."""
        self.proc.terminate()
        rc = self.proc.wait(20)
        assert rc == 0, f"trader exited {rc}: {(self.dir / 'trader.log').read_text()[-2000:]}"


@pytest.fixture
def ibkr_trader(ibkr_lab: IbkrLab, tmp_path: Path) -> Iterator[TraderRun]:
    d = OUT / "ibkr" / "trader" / tmp_path.name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    argv = ibkr_lab_exec("trader", [sys.executable, "-m", "faultline.examples.trading.tws.trader", "--connect",
                                    ibkr_lab.address, "--dir", str(d), "--rate", "5"])
    with (d / "trader.log").open("ab") as log:  # ib_async logs every IB error: a pipe could fill
        run = TraderRun(d, ibkr_lab.run_dir / "gateway", subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
    yield run
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait(10)


def ibkr_lab_exec(host: str, argv: list[str]) -> list[str]:
    return Lab(IBKR_LAB).exec_argv(host, argv)


@pytest.fixture(scope="module")
def faultline_hosts(ibkr_lab: IbkrLab):
    """The plugin's fixture, here the IB lab's agents."""
    from faultline.controller.env.hosts import connect, lab_endpoints

    hosts = {n: connect(ep) for n, ep in lab_endpoints(ibkr_lab.state).items()}
    yield hosts
    for h in hosts.values():
        h.client.close()


@pytest.fixture(scope="module")
def faultline_ibkr(ibkr_lab: IbkrLab) -> IbkrTarget:
    """The plugin's fixture, here the IB lab's gateway (4002) and its back end (ibserver:4001)."""
    return IbkrTarget(ibkr_lab.address, "gateway", ibkr_lab.upstream)


@pytest.fixture(scope="session")
def chaos_config() -> dict[str, float | int]:
    """The lab's client settings (seconds-long timeouts for seconds-long faults)."""
    return resilience.load(LAB_CONFIG).chaos_config()


def _need_lab() -> None:
    why = why_no_lab()
    if why and IN_VM:
        pytest.fail(f"inside the VM stage, yet: {why}")  # a VM stage that skips proves nothing
    if why:
        pytest.skip(why)


@pytest.fixture
def run_scenario(shared_lab, request):
    _need_lab()

    def run(path: Path, scorecard: bool = True) -> runner.Outcome:
        scn = scenario.load(path)
        out = OUT / path.stem
        shutil.rmtree(out, ignore_errors=True)  # an earlier run's logs would be read as this one's
        o = runner.run(scn, runner.RunOptions(out_dir=out, lab_config=LAB))
        report.write(o, out)
        show(request, o)
        if scorecard:  # a deliberately broken workload's run is a test of the suite, not a scenario
            OUTCOMES.append(o)
        return o
    return run


@pytest.fixture
def trading(run_scenario, request):
    """trading("partition_trader_gateway_3s"): that file of contracts/scenarios/trading, run once per
    session (the scenario files are the single source of each case; a test of another category
    judges the same run). A latency case skips where the kernel has no netem (the VM stage runs it)."""
    def get(name: str) -> runner.Outcome:
        path = TRADING / f"{name}.yaml"
        if name.startswith("latency") and (why := why_no_netem()):
            pytest.skip(f"{why}: the VM stage runs the latency cases (make test-vm)")
        if path not in RUNS:
            RUNS[path] = run_scenario(path)
        else:
            show(request, RUNS[path])
        return RUNS[path]
    return get


def show(request: pytest.FixtureRequest, o: runner.Outcome) -> None:
    """The scenario's block and the Key Metrics of the test's category, printed and in its row
    of an --html report (with the timeline picture)."""
    category = getattr(request.module, "CATEGORY", None)
    text, page = report.human(o), report.report_html(o)
    if category:
        metrics = key_metrics.of(o, category)  # computed once for both renderings
        text += "\n" + key_metrics.block(category, metrics)
        page += key_metrics.block_html(category, metrics)
    print(text)
    attach_html(request.node, page)


def assert_recovered(o: runner.Outcome) -> None:
    """RTO, data loss 0, order integrity, positions, market-data continuity, rollbacks: all of them,
    and the bounds the scenario puts on the workload's own counters (targets.counters)."""
    assert o.passed, failed(o)
    assert {"RTO", "data loss", "integrity", "market-data continuity", "rollbacks"} <= {v.name for v in o.verdicts}
    assert o.metrics.counters["sent"] > 20  # orders flowed the whole time


def verdict(o: runner.Outcome, name: str) -> str:
    v = next((v for v in o.verdicts if v.name == name), None)
    assert v is not None, f"no {name} verdict in {[v.name for v in o.verdicts]}"
    assert v.ok, f"{name}: {v.detail}"
    return v.detail


def failed(o: runner.Outcome) -> list[str]:
    return [f"{v.name}: {v.detail}" for v in o.verdicts if not v.ok]


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str], session: Any) -> None:
    """--html: the RECOVERY SCORECARD at the top of the report."""
    if OUTCOMES:
        prefix.append(f"<pre>{html.escape(report.scorecard(OUTCOMES))}</pre>")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not OUTCOMES:
        return
    terminalreporter.write_line("")
    for line in report.scorecard(OUTCOMES).splitlines():
        terminalreporter.write_line(line)
    path = OUT / "results.json"
    results.write_outcomes(OUTCOMES, path)
    terminalreporter.write_line(f"chaos results: {path} (per scenario: {OUT}/<name>/)")
    terminalreporter.write_line("")
    for line in readiness.render(readiness.checklist(readiness.load(path))).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(from the {len(OUTCOMES)} scenario(s) this session ran: faultline readiness {path})")
