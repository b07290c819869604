"""What users see is what it was before the packaging move (tests/baseline/recorded.json).

Every `--help` text of faultline and faultline-agent, and the one-line error of each malformed
scenario, compared with the recording; the journal's and results' shapes are compared where a
run makes them (tests/lab/test_scenarios.py, tests/chaos/conftest.py). A difference that is
meant (a renamed module in a text) goes in tests/baseline ALLOWED_RENAMES, listed in the note.
"""

from __future__ import annotations

import difflib

import pytest

from tests.baseline import help_texts, recorded, scenario_errors


def test_every_help_text_is_as_recorded() -> None:
    want = recorded()["help"]
    got = help_texts()
    assert sorted(got) == sorted(want), "commands added or removed: record again (python -m tests.baseline)"
    changed = {cmd: "".join(difflib.unified_diff(want[cmd].splitlines(True), got[cmd].splitlines(True)))
               for cmd in want if got[cmd] != want[cmd]}
    assert not changed, "\n".join(f"{cmd} --help changed:\n{diff}" for cmd, diff in changed.items())


def test_every_scenario_error_is_as_recorded(tmp_path) -> None:
    assert scenario_errors(tmp_path) == recorded()["scenario_errors"]


@pytest.mark.parametrize("planted", ["faultline run", "faultline-agent serve"])
def test_a_changed_help_text_is_caught(planted: str) -> None:
    """The comparison can fail: one changed character in one command's help is reported."""
    want = recorded()["help"]
    got = help_texts()
    got[planted] = got[planted].replace("usage:", "usage :", 1)
    assert [cmd for cmd in want if got[cmd] != want[cmd]] == [planted]
