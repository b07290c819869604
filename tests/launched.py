"""The external programs this project's code launches, found by reading its source.

What counts as a launch: the argv given to subprocess (run, Popen, call, check_call,
check_output), os.exec*, the lab's `in_ns(NS, PROG, ...)` / `exec_argv(HOST, [PROG, ...])`,
the program after `ip netns exec NS`, a list named in the same function and launched, the
commands of the shell snippets the VM stage runs (`inner_script`), and the `command` /
`restart_command` of scenario files. Python itself (`sys.executable`, `{python}`) is the
project's own interpreter, not an external program.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import yaml

LAUNCHERS = {"run", "Popen", "call", "check_call", "check_output", "execvp", "execv", "execvpe", "execlp"}
MODULES = {"subprocess", "os"}
# helper name -> index of its argv (list) or first argv word; run: fresh_check's Log.run(NAME, argv)
ARGV_HELPERS = {"in_ns": 1, "exec_argv": 1, "run": 1}
SHELL_FUNCTIONS = {"inner_script"}  # functions whose string constants are shell commands run as root
SHELL_KEYWORDS = {"for", "do", "done", "if", "then", "else", "fi", "while", "cd", "export", "echo", "exit",
                  "set", "true", "false", "test", "[", "exec", "trap", "wait", "read", "shift", "local"}


def _program(elts: list[ast.expr]) -> str | None:
    """The program of an argv list literal: its first constant after any *prefix; None if dynamic."""
    for i, e in enumerate(elts):
        if isinstance(e, ast.Starred):
            continue
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            words = [x.value if isinstance(x, ast.Constant) else None for x in elts[i:i + 4]]
            if words[:3] == ["ip", "netns", "exec"] and len(words) == 4 and words[3] is not None:
                return None  # `ip netns exec NS PROG`: NS is never a literal here; both named below
            return e.value
        return None  # sys.executable, a variable: the project's python or data
    return None


def _netns_exec_program(elts: list[ast.expr]) -> str | None:
    words = [x.value if isinstance(x, ast.Constant) and isinstance(x.value, str) else None for x in elts]
    if words[:3] == ["ip", "netns", "exec"] and len(words) > 4:
        return words[4]
    return None


def _is_launcher(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr in LAUNCHERS and isinstance(func.value, ast.Name)
            and func.value.id in MODULES)


def _is_which(func: ast.expr) -> bool:
    """shutil.which("PROG") or require("PROG"): looked for because it is about to be run."""
    if isinstance(func, ast.Name):
        return func.id == "require"
    return isinstance(func, ast.Attribute) and func.attr in ("which", "require") and isinstance(func.value, ast.Name) \
        and func.value.id in ("shutil", "programs")


def _helper(func: ast.expr) -> str | None:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in ARGV_HELPERS else None


def shell_commands(text: str) -> Iterator[str]:
    """First words of each command in a shell snippet (builtins and keywords left out)."""
    for part in re.split(r";|&&|\|\||\||\n|\$\(|`", text):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:
            words = part.split()
        while words and (words[0] in SHELL_KEYWORDS or "=" in words[0]):
            words = words[1:] if words[0] not in ("for", "export") else []
        if words and re.fullmatch(r"[\w./+-]+", words[0]) and not words[0].startswith("-"):
            yield words[0]


def in_python(source: str, where: str = "") -> Iterator[tuple[str, str]]:
    """(program, 'file:line') for each launch in Python source."""
    tree = ast.parse(source)
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            continue
        lists: dict[str, ast.List] = {}
        body_nodes = list(ast.walk(fn)) if not isinstance(fn, ast.Module) else [
            n for stmt in fn.body if not isinstance(stmt, ast.FunctionDef | ast.ClassDef) for n in ast.walk(stmt)]
        for node in body_nodes:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        lists[t.id] = node.value
        if isinstance(fn, ast.FunctionDef) and fn.name in SHELL_FUNCTIONS:
            for node in ast.walk(fn):
                if isinstance(node, ast.List):
                    for e in node.elts:  # each element one shell command line
                        text = e.value if isinstance(e, ast.Constant) else (
                            e.values[0].value if isinstance(e, ast.JoinedStr) and e.values
                            and isinstance(e.values[0], ast.Constant) else None)
                        for prog in shell_commands(text) if isinstance(text, str) else ():
                            yield prog, f"{where}:{e.lineno}"
        for node in body_nodes:
            if isinstance(node, ast.List):
                if prog := _netns_exec_program(node.elts):
                    yield prog, f"{where}:{node.lineno}"
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:  # restart_command=[PROG, ...]: an argv the agent launches
                if kw.arg == "restart_command" and isinstance(kw.value, ast.List) and \
                        (prog := _program(kw.value.elts)):
                    yield prog, f"{where}:{node.lineno}"
            if _is_which(node.func) and node.args and isinstance(node.args[0], ast.Constant):
                yield str(node.args[0].value), f"{where}:{node.lineno}"
                continue
            argv: ast.expr | None = None
            if not node.args:
                continue
            if _is_launcher(node.func):
                argv = node.args[0]
            elif (name := _helper(node.func)) and len(node.args) > ARGV_HELPERS[name]:
                first = node.args[ARGV_HELPERS[name]]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    yield first.value, f"{where}:{node.lineno}"
                    continue
                argv = first
            if isinstance(argv, ast.Constant) and isinstance(argv.value, str):  # os.execvp("PROG", argv)
                yield argv.value, f"{where}:{node.lineno}"
                continue
            if isinstance(argv, ast.Name) and argv.id in lists:
                argv = lists[argv.id]
            if isinstance(argv, ast.List | ast.Tuple) and (prog := _program(argv.elts)):
                yield prog, f"{where}:{node.lineno}"


def in_scenario(text: str, where: str = "") -> Iterator[tuple[str, str]]:
    """(program, file) for each command of a scenario or workload file."""
    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("command", "restart_command") and isinstance(v, list) and v and isinstance(v[0], str):
                    if not v[0].startswith("{"):
                        yield v[0]
                else:
                    yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
    for prog in walk(yaml.safe_load(text)):
        yield prog, where


OWN = {"faultline", "faultline-agent", "python", "python3"}  # the project's own entry points and interpreter
SOURCE_DIRS = ("agent", "controller", "examples", "tests", "bench", "scripts")
SCENARIO_DIRS = ("contracts", "tests", "examples")


def scan(repo: Path) -> dict[str, list[str]]:
    """program (basename) -> where it is launched, over the whole repository."""
    found: dict[str, list[str]] = {}
    for d in SOURCE_DIRS:
        for f in sorted((repo / d).rglob("*.py")):
            if "fixtures" in f.parts:
                continue
            for prog, where in in_python(f.read_text(), str(f.relative_to(repo))):
                # A shell line given as one word (`bash -c "a | b"`): each of its commands.
                for p in shell_commands(prog) if " " in prog else [prog]:
                    if Path(p).name not in OWN:
                        found.setdefault(Path(p).name, []).append(where)
    for d in SCENARIO_DIRS:
        for f in sorted((repo / d).rglob("*.yaml")):
            if "fixtures" in f.parts:
                continue
            for prog, where in in_scenario(f.read_text(), str(f.relative_to(repo))):
                found.setdefault(Path(prog).name, []).append(where)
    return found
