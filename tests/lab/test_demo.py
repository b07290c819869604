"""Must show 6: `faultline demo` measures a 3 s disconnect end to end and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from tests.netns import why_no_lab


def kernel_names() -> tuple[set[str], set[str]]:
    with IPRoute() as ipr:
        return set(netns.listnetns()), {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


@pytest.mark.skipif(why_no_lab() is not None, reason=str(why_no_lab()))
def test_demo_runs_under_a_minute_and_leaves_nothing():
    before = kernel_names()
    r = subprocess.run([str(Path(sys.executable).parent / "faultline"), "demo"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    healed = float(re.search(r"fault healed .*\(\+(\d+\.\d+) s\)", out).group(1))
    reconnect = float(re.search(r"client reconnected\s+\+(\d+\.\d+) s after heal", out).group(1))
    assert 2.9 < healed < 4.0
    assert 0 <= reconnect < 3.0  # backoff is at most 0.4 s, a connect attempt 0.5 s
    assert float(re.search(r"done in (\d+\.\d+) s", out).group(1)) < 60
    assert kernel_names() == before
