import os

from faultline.agent.domain.journal import Journal


def test_pending_survives_a_new_process_and_release_empties(tmp_path):
    j = Journal(tmp_path)
    a = j.record("f-1", {"op": "add_clsact"}, {"op": "del_clsact", "ifindex": 2})
    b = j.record("f-1", {"op": "add_filter"}, {"op": "del_filter", "ifindex": 2})
    again = Journal(tmp_path)  # what a restarted agent reads
    assert [e.seq for e in again.pending()] == [a, b]
    assert again.pending()[1].undo == {"op": "del_filter", "ifindex": 2}
    again.release(b)
    assert [e.seq for e in Journal(tmp_path).pending()] == [a]
    again.release(a)
    assert Journal(tmp_path).is_empty()
    assert os.path.getsize(tmp_path / Journal.FILE) == 0  # truncated when nothing is pending


def test_seq_keeps_growing_after_restart(tmp_path):
    j = Journal(tmp_path)
    a = j.record("f-1", {}, {"op": "x"})
    assert Journal(tmp_path).record("f-2", {}, {"op": "y"}) > a


def test_torn_last_line_is_ignored(tmp_path):
    j = Journal(tmp_path)
    j.record("f-1", {"op": "a"}, {"op": "undo-a"})
    with open(tmp_path / Journal.FILE, "a") as f:
        f.write('{"seq": 2, "at_ns": 1, "fault')  # crash mid-write, before fsync returned
    pending = Journal(tmp_path).pending()
    assert [e.undo["op"] for e in pending] == ["undo-a"]


def test_release_of_unknown_seq_is_harmless(tmp_path):
    j = Journal(tmp_path)
    j.release(99)
    assert j.is_empty()


def test_a_record_after_a_torn_tail_survives_the_next_recovery(tmp_path):
    """Torn tail, then a new record, then a crash: the new record is read back (issue 19)."""
    Journal(tmp_path).record("f-1", {"op": "a"}, {"op": "undo-a"})
    with open(tmp_path / Journal.FILE, "a") as f:
        f.write('{"seq": 2, "at_ns": 1, "fault')  # crash mid-write
    j = Journal(tmp_path)  # the restarted agent
    j.record("f-2", {"op": "b"}, {"op": "undo-b"})
    assert (tmp_path / Journal.FILE).read_text().count("\n") == 2  # the torn bytes are gone
    assert [e.undo["op"] for e in Journal(tmp_path).pending()] == ["undo-a", "undo-b"]


def test_an_unreadable_line_in_the_middle_is_skipped_not_cut(tmp_path):
    j = Journal(tmp_path)
    j.record("f-1", {"op": "a"}, {"op": "undo-a"})
    with open(tmp_path / Journal.FILE, "a") as f:
        f.write('{"seq": "x"}\n')  # well-formed JSON, not a record
    j.record("f-2", {"op": "b"}, {"op": "undo-b"})
    assert [e.undo["op"] for e in Journal(tmp_path).pending()] == ["undo-a", "undo-b"]
    assert (tmp_path / Journal.FILE).read_text().count("\n") == 3
