"""The README and docs/ as a user reads them: the README short, every relative link resolving,
every `faultline ...` / `faultline-agent ...` command line in a code block parsing with the CLI
as it is now, and the README's scenario loading as it is written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from faultline.agent import cli as agent_cli
from faultline.controller.cli import main as cli
from faultline.controller.model import scenario

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def code_lines(text: str) -> list[str]:
    """Lines of indented blocks and of fenced blocks other than python/yaml, continuations joined."""
    out, fence, prev_blank, in_indent = [], None, True, False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else (line[3:].strip() or "text")
            continue
        if fence is not None:
            if fence not in ("python", "yaml"):
                out.append(line)
            continue
        if line.startswith("    ") and (prev_blank or in_indent):
            in_indent = True
            out.append(line.strip())
        elif line.strip():
            in_indent = False
        prev_blank = not line.strip()
    joined: list[str] = []
    for line in out:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line.strip())
    return joined


def commands(page: Path) -> list[list[str]]:
    return commands_of(page.read_text())


def commands_of(text: str) -> list[list[str]]:
    found = []
    for line in code_lines(text):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for part in " ".join(shlex.quote(w) for w in words).split(" && "):
            argv = shlex.split(part)
            while argv and (argv[0] in ("sudo", "export") or ENV.match(argv[0])):
                argv = argv[1:]
            if argv and argv[0] in ("faultline", "faultline-agent"):
                found.append(argv)
    return found


def unparsable(argvs: list[list[str]]) -> list[str]:
    """The command lines the current CLI (faultline or faultline-agent) refuses."""
    bad = []
    for argv in argvs:
        parse = agent_cli.build_parser().parse_args if argv[0] == "faultline-agent" else \
            (lambda a: cli.build_parser().parse_args(cli._lift_json(a)))
        try:
            parse(argv[1:])
        except SystemExit:
            bad.append(shlex.join(argv))
    return bad


def test_the_readme_is_at_most_250_lines():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= 250, f"README.md has {n} lines: move reference to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_line_parses_with_the_current_cli(page, monkeypatch):
    monkeypatch.delenv("FAULTLINE_AGENT", raising=False)
    bad = unparsable(commands(page))
    assert not bad, f"{page.name}: these do not parse:\n" + "\n".join(bad)


def test_the_pages_have_commands_to_check():
    """Not vacuous: the README's five steps and the reference are read."""
    assert len(commands(REPO / "README.md")) >= 8 and len(commands(REPO / "docs" / "faults.md")) >= 20


def test_the_readme_scenario_loads_as_written(tmp_path):
    text = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(title: App to database.*?)```", text, re.S).group(1)
    (tmp_path / "app_db_partition.yaml").write_text(block)
    s = scenario.load(tmp_path / "app_db_partition.yaml")
    assert s.hosts["app1"].agent == "10.1.0.5:7070" and s.probes["db-port"].params["from"] == "app1"


def test_a_command_that_no_longer_parses_is_caught(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("Try:\n\n    sudo FAULTLINE_TLS_DIR=x faultline inject --agent h disconnect --bogus  # old\n")
    assert commands(page) == [["faultline", "inject", "--agent", "h", "disconnect", "--bogus"]]
    with pytest.raises(AssertionError, match="do not parse"):
        test_every_command_line_parses_with_the_current_cli(page, monkeypatch)


def test_every_commands_help_ends_with_an_example_that_parses(monkeypatch):
    """`--help` of every command and subcommand of both programs has examples, and each parses."""
    from tests.baseline import help_texts

    monkeypatch.delenv("FAULTLINE_AGENT", raising=False)
    texts = help_texts()
    assert [name for name, text in texts.items() if "example" not in text] == []
    page = "\n".join("    " + line.strip() for text in texts.values() for line in text.splitlines()
                       if line.strip().startswith(("faultline ", "faultline-agent ")))
    bad = unparsable(commands_of(page))
    assert not bad, "\n".join(bad)
