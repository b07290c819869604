"""What users see, recorded before the packaging move (issue 20) so that a test can prove it unchanged.

`python -m tests.baseline` records tests/baseline/recorded.json from the code as it is;
tests/unit/test_behaviour_baseline.py and the lab/chaos tests compare against that file.
Differences allowed by the move (the names themselves) are listed in ALLOWED_RENAMES.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path

RECORDED = Path(__file__).with_name("recorded.json")
COLUMNS = "100"  # argparse wraps at the terminal width: fix it so help texts compare
# old text -> new text, applied to the recording before comparing (the renames of issue 20).
ALLOWED_RENAMES: dict[str, str] = {}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    yield " ".join(path), parser.format_help()
    for action in parser._actions:  # argparse has no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def help_texts() -> dict[str, str]:
    """`--help` of every command and subcommand of both programs."""
    from faultline.agent.cli import build_parser as agent_parser
    from faultline.controller.cli.main import build_parser as controller_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        texts = dict(_walk(controller_parser(), ("faultline",)))
        texts.update(_walk(agent_parser(), ("faultline-agent",)))
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return texts


def scenario_errors(tmp: Path) -> list[str]:
    """The one-line error of each malformed scenario of tests/unit/test_scenario.py, its dir as <dir>."""
    from faultline.controller.model.schema import SchemaError
    from tests.unit.test_scenario import GOOD, MALFORMED, load

    errors = []
    for old, new, *_ in MALFORMED:
        try:
            load(tmp, GOOD.replace(old, new, 1))
            errors.append("(no error)")
        except SchemaError as e:
            errors.append(str(e).replace(str(tmp), "<dir>"))
    return errors


def key_paths(obj: object, prefix: str = "") -> set[str]:
    """Every key path of a JSON document, list items as [] (a.b[].c)."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.add(p)
            out |= key_paths(v, p)
    elif isinstance(obj, list):
        for v in obj:
            out |= key_paths(v, prefix + "[]")
    return out


def journal_shape(journals: list[dict]) -> dict[str, list[str]]:
    """Top-level keys every journal has, and those some have (the rest depends on the scenario)."""
    tops = [set(j) for j in journals]
    return {"always": sorted(set.intersection(*tops)), "any": sorted(set.union(*tops))}


def recorded() -> dict:
    text = RECORDED.read_text()
    for old, new in ALLOWED_RENAMES.items():
        text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
    return json.loads(text)


def assert_journal_shape(journal: dict) -> None:
    """A journal written now has the top-level keys journals had when recorded."""
    shape = recorded()["journal_top_level"]
    keys = set(journal)
    assert set(shape["always"]) <= keys, f"journal lost keys: {sorted(set(shape['always']) - keys)}"
    assert keys <= set(shape["any"]), f"journal gained keys: {sorted(keys - set(shape['any']))} (record again)"
