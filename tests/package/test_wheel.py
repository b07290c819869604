"""Issue 20 must-show 1: the built wheel, installed into a fresh venv (with the system's site
packages, for Debian's bcc), provides `faultline`, `faultline-agent`, the pytest plugin, the
BPF C sources and the stubs, and nothing else at top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def sh(*argv: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)
    assert r.returncode == 0, f"{' '.join(map(str, argv))}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("build", reason="the `build` package (pip install -e .[dev]) makes the wheel")
    dist = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "build", "--outdir", dist, REPO)
    [wheel], [sdist] = dist.glob("*.whl"), dist.glob("*.tar.gz")
    return wheel, sdist


def test_the_wheel_installs_only_faultline_at_top_level(built, tmp_path):
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"faultline"}, tops
    for needed in ("faultline/agent/kernel/tc_drop.c", "faultline/agent/kernel/tcp_watch.c",
                   "faultline/v1/agent_pb2.py", "faultline/v1/agent_pb2_grpc.py", "faultline/v1/agent.proto",
                   "faultline/contracts/resilience_config.yaml", "faultline/controller/pytest_plugin.py"):
        assert needed in names, needed
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--system-site-packages", venv)
    # Its dependencies from wherever this machine's pip gets them (its index, its cache).
    sh(venv / "bin" / "pip", "install", "-q", wheel, "pytest", timeout=600)
    site = sh(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    record = next(Path(site).glob("faultline-*.dist-info")) / "RECORD"
    installed = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    assert {t for t in installed if not t.endswith(".dist-info") and t != ".."} == {"faultline"}, installed
    elsewhere = tmp_path / "unrelated"  # not the repository: nothing of it on sys.path
    elsewhere.mkdir()
    assert "inject kernel-level network faults" in sh(venv / "bin" / "faultline", "--help", cwd=elsewhere)
    assert "serve the Agent API" in sh(venv / "bin" / "faultline-agent", "--help", cwd=elsewhere)
    fixtures = sh(venv / "bin" / "python", "-m", "pytest", "--fixtures", "-p", "faultline", cwd=elsewhere)
    for f in ("network_fault_injector", "recovery_timer", "chaos_scenario", "chaos_config"):
        assert f in fixtures, fixtures[-2000:]
    assert sh(venv / "bin" / "python", "-c", "import faultline.controller.suite as s; print(s.FaultType.__name__)",
              cwd=elsewhere).strip() == "FaultType"
