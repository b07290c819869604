"""Programs compiled behind a serving agent: waiting, failing, stopping, and what a request sees."""

from __future__ import annotations

import threading

import pytest

from faultline.agent.domain.deferred import Deferred, compile_in_background
from faultline.agent.domain.engine import FaultEngine
from faultline.agent.domain.errors import FailedPrecondition, Unavailable
from faultline.agent.domain.spec import Direction, FaultKind, Mechanism
from faultline.agent.domain.validation import RawSpec
from tests.fakes import LINKS, FakeMechanism


def test_get_waits_for_the_build_and_reports_its_time():
    gate = threading.Event()
    d = Deferred("slow.c", lambda: gate.wait(5) and "program")
    assert d.status().state == "queued"
    worker = compile_in_background([d])
    with pytest.raises(Unavailable, match=r"slow\.c is still compiling"):
        d.get(0.05)
    gate.set()
    assert d.get(5) == "program"
    worker.join(5)
    s = d.status()
    assert s.state == "ready" and s.seconds > 0 and s.error == ""


def test_a_failed_build_is_a_precondition_naming_why_and_the_worker_goes_on():
    def broken() -> str:
        raise FailedPrecondition("tc_drop.c did not compile: clang said no")
    bad, good = Deferred("tc_drop.c", broken), Deferred("tcp_watch.c", lambda: "observer")
    built = []
    compile_in_background([bad, good], on_built=built.append).join(5)
    with pytest.raises(FailedPrecondition, match="clang said no"):
        bad.get(0)
    assert good.get(0) == "observer" and built == [bad, good]
    assert bad.status().state == "failed"


def test_closed_before_its_turn_it_is_never_built():
    calls = []
    d = Deferred("x.c", lambda: calls.append(1) or "p")
    d.close()
    compile_in_background([d]).join(5)
    assert calls == [] and d.status().state == "failed"


def test_closed_while_building_the_result_is_released():
    gate, released = threading.Event(), []
    d = Deferred("x.c", lambda: gate.wait(5) and "p", close=released.append)
    worker = compile_in_background([d])
    d.close()
    gate.set()
    worker.join(5)
    assert released == ["p"] and d.ready() is None


def raw_disconnect() -> RawSpec:
    return RawSpec(kind=FaultKind.DISCONNECT, interface="lab0", direction=Direction.BOTH, lease_ms=10_000,
                   peer_cidrs=["10.0.0.2/32"])


class CompilingMechanism(FakeMechanism):
    def __init__(self) -> None:
        super().__init__()
        self.waited: list[float] = []

    def ready(self, wait_s: float) -> None:
        self.waited.append(wait_s)
        raise Unavailable("tc_drop.c is still compiling (3 s so far)")


def test_an_apply_while_compiling_is_unavailable_and_changes_nothing():
    mech = CompilingMechanism()
    engine = FaultEngine([mech], {}, LINKS.get, route_interface=lambda _a: "lab0")
    with pytest.raises(Unavailable, match="still compiling"):
        engine.apply(raw_disconnect(), wait_s=0.2)
    assert mech.waited == [0.2] and mech.installed == {} and engine.list() == []


def test_a_mechanism_withdrawn_after_a_failed_compile_is_not_offered():
    engine = FaultEngine([FakeMechanism()], {}, LINKS.get, route_interface=lambda _a: "lab0")
    engine.withdraw(Mechanism.EBPF_TC, "the tc classifier did not compile: x")
    with pytest.raises(FailedPrecondition, match="did not compile"):
        engine.apply(raw_disconnect())
