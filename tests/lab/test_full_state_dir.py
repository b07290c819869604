"""A full state dir (issue 32 item 2) on a real, tiny tmpfs: a journal record is all or nothing.
A record that does not fit is refused as Exhausted (RESOURCE_EXHAUSTED, naming the directory and
the bytes free) and the file cut back; a release that does not fit never fails the undo and is
written with the next record; nothing is glued to a torn line, so recovery loses no undo."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from faultline.agent.domain.errors import Exhausted
from faultline.agent.domain.journal import Journal
from testkit.netns import why_no_lab

UNDO = {"op": "sigcont", "pid": 999_999_999, "start": 1, "comm": "x" * 400}  # ~0.5 kB a record
BIG = {**UNDO, "comm": "x" * 9000}  # past what is left of a tmpfs page: needs a new one


@pytest.fixture
def tiny(tmp_path):
    if why := why_no_lab():
        pytest.skip(why)
    mnt = tmp_path / "state"
    mnt.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def fill(mnt: Path) -> Path:
    """Take every free byte of the filesystem."""
    ballast = mnt / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return ballast


def test_a_record_that_does_not_fit_is_refused_whole_and_the_next_one_is_recovered(tiny):
    j = Journal(tiny)
    j.record("f-1", {"op": "sigstop"}, UNDO)
    before = (tiny / Journal.FILE).stat().st_size
    ballast = fill(tiny)
    with pytest.raises(Exhausted, match=rf"the state dir {tiny} cannot take the journal record .*bytes free"):
        j.record("f-2", {"op": "sigstop"}, BIG)
    assert (tiny / Journal.FILE).stat().st_size == before  # cut back: no half a line
    ballast.unlink()
    j.record("f-3", {"op": "sigstop"}, UNDO)
    assert [e.fault_id for e in Journal(tiny).pending()] == ["f-1", "f-3"]  # recovery sees both


def pad_to_page(j: Journal, mnt: Path, fault_id: str) -> None:
    """A record that ends the journal exactly at a page boundary: the next byte needs a new page."""
    size = (mnt / Journal.FILE).stat().st_size
    target = (size // 4096 + 2) * 4096
    seq = j._seq + 1  # the seq this record will get
    empty = len(json.dumps({"seq": seq, "at_ns": time.time_ns(), "fault_id": fault_id, "change": {"op": "sigstop"},
                            "undo": {**UNDO, "comm": ""}}, sort_keys=True)) + 1
    j.record(fault_id, {"op": "sigstop"}, {**UNDO, "comm": "x" * (target - size - empty)})
    assert (mnt / Journal.FILE).stat().st_size == target


def test_a_release_that_does_not_fit_never_fails_the_undo_and_is_written_later(tiny):
    j = Journal(tiny)
    one = j.record("f-1", {"op": "sigstop"}, UNDO)
    pad_to_page(j, tiny, "f-2")
    ballast = fill(tiny)
    j.release(one)  # the undo was done: this must not raise, though its record cannot be written
    assert [e.fault_id for e in j.pending()] == ["f-2"]
    assert [e.fault_id for e in Journal(tiny).pending()] == ["f-1", "f-2"]  # on disk: not yet
    ballast.unlink()
    j.record("f-3", {"op": "sigstop"}, UNDO)  # carries the owed release
    assert [e.fault_id for e in Journal(tiny).pending()] == ["f-2", "f-3"]


def test_a_torn_tail_is_cut_before_the_next_append(tiny):
    j = Journal(tiny)
    j.record("f-1", {"op": "sigstop"}, UNDO)
    with open(tiny / Journal.FILE, "ab") as f:
        f.write(b'{"seq": 2, "fault_id": "f-2", "chan')  # what a short write used to leave
    j.record("f-3", {"op": "sigstop"}, UNDO)
    assert [e.fault_id for e in Journal(tiny).pending()] == ["f-1", "f-3"]
    assert os.path.getsize(tiny / Journal.FILE) > 0
