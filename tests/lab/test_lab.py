"""The lab is idempotent and removes exactly what it made."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from faultline.controller.env.lab import Lab, LabConfig
from testkit.netns import why_no_lab

CFG = LabConfig(prefix="fli", subnet4="10.79.0.0/24", subnet6="fd79::/64", run_dir=Path("/run/faultline-test"))


def names() -> tuple[set[str], set[str]]:
    with IPRoute() as ipr:
        links = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    return set(netns.listnetns()), links


@pytest.mark.skipif(why_no_lab() is not None, reason=str(why_no_lab()))
def test_up_twice_down_twice_leaves_exactly_what_was_there():
    ns0, links0 = names()
    lab = Lab(CFG)
    try:
        a = lab.up(["alpha"])
        b = lab.up(["alpha"])  # idempotent: same host, same agent
        assert a.hosts["alpha"].pid == b.hosts["alpha"].pid
        ns1, links1 = names()
        assert ns1 - ns0 == {"fli-alpha"} and links1 - links0 == {"fli-br0", "fli-alpha"}
    finally:
        lab.down()
    assert lab.down() == ["no lab recorded: nothing to remove"]
    assert names() == (ns0, links0)
    assert not Path(a.hosts["alpha"].state_dir).exists()
