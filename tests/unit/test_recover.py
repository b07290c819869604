"""Recovery never stops at one bad record; one agent per state dir (issue 19)."""

from __future__ import annotations

import os

import pytest

from faultline.agent.domain.errors import FailedPrecondition
from faultline.agent.domain.journal import Journal
from faultline.agent.domain.statelock import StateLock
from faultline.agent.recovery import recover


def test_one_failing_undo_does_not_stop_the_others_and_stays_journalled(tmp_path):
    j = Journal(tmp_path)
    j.record("f-1", {"op": "sigstop"}, {"op": "sigcont", "pid": 999_999_999, "start": 1})
    j.record("f-2", {"op": "kill"}, {"op": "run", "argv": ["/nonexistent"], "log": str(tmp_path / "r.log")})
    j.record("f-3", {"op": "mystery"}, {"op": "from-the-future"})
    j.record("f-4", {"op": "sigstop"}, {"op": "sigcont", "pid": 999_999_998, "start": 1})
    out = recover(Journal(tmp_path), tc=None)  # no undo here needs tc
    assert len(out.done) == 2 and all("nothing to resume" in d for d in out.done)
    assert len(out.failed) == 2
    assert any("/nonexistent" in f for f in out.failed)
    assert any("unknown undo op 'from-the-future'" in f for f in out.failed)
    assert sorted(e.fault_id for e in Journal(tmp_path).pending()) == ["f-2", "f-3"]  # for the next try


def test_a_second_holder_of_the_state_dir_is_refused_naming_the_first(tmp_path):
    first = StateLock(tmp_path, "serve")
    with pytest.raises(FailedPrecondition, match=r"in use by pid \d+ \(faultline-agent serve\)"):
        StateLock(tmp_path, "cleanup")
    first.release()
    StateLock(tmp_path, "cleanup").release()  # free again once the holder is gone


def test_a_second_agent_in_one_network_namespace_is_refused_naming_the_first():
    from faultline.agent.kernel.nslock import NetnsLock

    first = NetnsLock()
    try:
        with pytest.raises(FailedPrecondition, match=rf"served by another agent \(pid {os.getpid()}: .*python"):
            NetnsLock()
    finally:
        first.release()
    NetnsLock().release()  # free once the holder is gone


def test_a_change_journalled_in_a_namespace_that_is_gone_is_released_saying_so(tmp_path):
    from faultline.agent.recovery import recover_everywhere

    j = Journal(tmp_path)
    j.record("f-1", {"op": "add_filter"}, {"op": "del_filter", "netns": "fl-long-gone", "netns_ino": 1,
                                          "interface": "lab0", "ifindex": 2, "direction": "egress"})
    out = recover_everywhere([Journal(tmp_path)])
    assert out.failed == [] and out.done == ["del_filter of f-1: namespace fl-long-gone gone: nothing left there"]
    assert Journal(tmp_path).pending() == []
