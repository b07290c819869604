"""`faultline demo`: the trading lab under the representative set, scorecard 100 %, nothing left behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from testkit.netns import why_no_lab


def kernel_names() -> tuple[set[str], set[str]]:
    with IPRoute() as ipr:
        return set(netns.listnetns()), {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def why_failed(r: subprocess.CompletedProcess[str]) -> str:
    """Each scenario's title and its failed checks (the full output is too long for an assertion
    message, and its tail holds only the last scenario), then the tail of stderr."""
    keep = [line for line in r.stdout.splitlines()
            if line.startswith(("CHAOS SCENARIO", "SCENARIO FAILED")) or "✗" in line or "Detection Time" in line]
    return "\n".join(keep) + "\n" + r.stderr[-2000:]


@pytest.mark.skipif(why_no_lab() is not None, reason=str(why_no_lab()))
def test_demo_runs_the_set_under_three_minutes_and_leaves_nothing(tmp_path):
    before = kernel_names()
    r = subprocess.run([str(Path(sys.executable).parent / "faultline"), "demo"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, why_failed(r)
    out = r.stdout
    assert "RECOVERY SCORECARD" in out and "Success Rate: 100.0%" in out
    ran = int(re.search(r"OVERALL: (\d+) passed, 0 failed", out).group(1))
    skipped = out.count("SKIPPED latency")
    assert ran + skipped == 4 and ran >= 3
    for title in ("partition, 3 s", "20 % loss gateway-broker", "broker kill and restart"):
        assert "CHAOS SCENARIO: Trading: " in out and title in out
    assert len(re.findall(r"timeline \S+timeline.html", out)) == ran
    assert float(re.search(r"in (\d+) s; results under", out).group(1)) < 180
    assert kernel_names() == before
