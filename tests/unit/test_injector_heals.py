"""The injector's heal goes to every host: one host's failure never leaves the others' faults in
(they ran into the next test for the rest of their lease)."""

from __future__ import annotations

import pytest

from faultline.controller.agents.client import AgentClient
from faultline.controller.env.hosts import Endpoint, connect
from faultline.controller.suite.injector import FaultInjector, HealFailed
from tests.fakes import fake_agent


def test_a_failed_heal_on_one_host_still_heals_the_others():
    with fake_agent(host="127.0.0.1") as (a_addr, a_engine), fake_agent(host="127.0.0.2") as (b_addr, b_engine):
        hosts = {"a": connect(Endpoint("a", a_addr, "127.0.0.1", interface="lab0")),
                 "b": connect(Endpoint("b", b_addr, "127.0.0.2", interface="lab0"))}
        inj = FaultInjector(hosts)
        with pytest.raises(HealFailed, match=r"heal failed on a: .*UNAVAILABLE.* \(the others healed"):
            with inj.inject_disconnect(duration_s=0.1, target="10.9.9.9", on=["a", "b"]):
                assert len(a_engine.list()) == 1 and len(b_engine.list()) == 1
                hosts["a"].client.close()  # a's agent cannot be reached for the heal
                hosts["a"].client = AgentClient("127.0.0.1:1", timeout_s=1.0)
        assert b_engine.list() == []  # healed all the same
        for h in hosts.values():
            h.client.close()
