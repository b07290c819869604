"""`python -m faultline` is the CLI, exit status included (scripts and tests rely on it)."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_faultline_passes_the_exit_status_on(tmp_path):
    r = subprocess.run([sys.executable, "-m", "faultline", "run", str(tmp_path / "missing.yaml")],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "missing.yaml: No such file or directory" in r.stderr, (r.returncode, r.stderr)
    ok = subprocess.run([sys.executable, "-m", "faultline", "--help"], capture_output=True, text=True, timeout=60,
                        check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("usage: faultline"), ok.stdout[:200]
