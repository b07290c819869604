"""The layers, as a rule on imports (every import, also those inside functions).

Agent: kernel mechanisms <- domain <- recovery <- runtime <- rpc (the servicer) <- cli. The domain imports
nothing of the agent but itself; neither it, the kernel layer nor the runtime imports grpc or
the stubs (only faultline.agent.rpc translates).

Controller: agents (the agent API client: the only package that imports grpc) <- model (the
scenario format) <- env (lab, VM, certificates) <- run (one scenario, judged) <- suite (the
chaos suite's API without pytest) <- the front ends (cli, pytest_plugin). A package imports
only those before it. Nothing of the product imports the tests; the agent never imports the
controller or the trading lab; the controller never imports the trading lab or the workloads.
Outside the product: the benchmarks import faultline and the test kit, never the tests; the
test kit imports only faultline. A planted violation is caught (the last tests).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Repository folder -> its import name once installed (pyproject.toml maps them).
PACKAGES = {"agent": "faultline.agent", "controller": "faultline.controller", "examples": "faultline.examples"}
GRPC = ("grpc", "faultline.v1", "google.protobuf")
A, C = "faultline.agent", "faultline.controller"
CONTROLLER_LAYERS = ("agents", "model", "env", "run", "suite")

# module prefix -> (prefixes of this repo it may import, may it import grpc/stubs); longest prefix wins.
RULES: dict[str, tuple[tuple[str, ...], bool]] = {
    f"{A}.domain": ((f"{A}.domain",), False),
    f"{A}.kernel": ((f"{A}.domain", f"{A}.kernel"), False),
    f"{A}.recovery": ((f"{A}.domain", f"{A}.kernel"), False),
    f"{A}.runtime": ((f"{A}.domain", f"{A}.kernel", f"{A}.recovery", f"{A}.runtime"), False),
    f"{A}.rpc": ((f"{A}.domain", f"{A}.kernel", f"{A}.runtime", f"{A}.rpc"), True),
    f"{A}.cli": ((A,), True),
    A: ((A,), False),                                     # faultline/agent/__init__.py
    **{f"{C}.{layer}": (tuple(f"{C}.{x}" for x in CONTROLLER_LAYERS[: i + 1]) + ((C,) if i == 0 else ()),
                        layer == "agents")
       for i, layer in enumerate(CONTROLLER_LAYERS)},
    f"{C}.cli": ((f"{C}.cli", *(f"{C}.{x}" for x in CONTROLLER_LAYERS)), False),
    f"{C}.pytest_plugin": (tuple(f"{C}.{x}" for x in CONTROLLER_LAYERS), False),
    C: ((C,), False),
    "faultline.examples": (("faultline.examples", C), False),
    "testkit": (("testkit", "faultline"), True),
    "bench": (("bench", "testkit", "faultline"), True),
}
# Modules allowed to import the stubs without speaking gRPC: none now (past the agents package,
# watch results are plain values and fault requests opaque); kept so an exception is explicit.
STUB_READERS: set[str] = set()
OURS = ("faultline.agent", "faultline.controller", "faultline.examples", "agent", "controller", "examples",
        "tests", "bench", "testkit")


def _rule(module: str) -> tuple[tuple[str, ...], bool]:
    best = max((p for p in RULES if module == p or module.startswith(p + ".")), key=len)
    return RULES[best]


def _prefix(module: str) -> str:
    return max((p for p in RULES if module == p or module.startswith(p + ".")), key=len)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports(module: str, source: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in `source`, relative ones resolved."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
    return found


def violations(module: str, source: str) -> list[str]:
    allowed, grpc_ok = _rule(module)
    out = []
    for line, name in imports(module, source):
        if name == "faultline":  # the package root: __version__ only, for Health and journals
            continue
        if _within(name, ("faultline.v1", "google.protobuf")) and module in STUB_READERS:
            continue
        if _within(name, GRPC) and not grpc_ok:
            out.append(f"{module}:{line} imports {name}: only faultline.agent.rpc, faultline.agent.cli and "
                       f"faultline.controller.agents speak gRPC")
        elif _within(name, ("agent", "controller", "examples")):
            out.append(f"{module}:{line} imports {name}: installed, only `faultline` exists; import "
                       f"faultline.{name}")
        elif _within(name, OURS) and not _within(name, allowed):
            out.append(f"{module}:{line} imports {name}: {_prefix(module)} layer rule allows "
                       f"{', '.join(allowed)}")
    return out


def product_modules() -> list[tuple[str, Path]]:
    mods = []
    for folder, name in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods.append((".".join((name, *parts)), path))
    return mods


def kit_and_bench_modules() -> list[tuple[str, Path]]:
    return [(".".join(path.relative_to(REPO).with_suffix("").parts), path)
            for folder in ("testkit", "bench") for path in sorted((REPO / folder).rglob("*.py"))]


def test_the_tree_follows_the_import_rules() -> None:
    found = [v for module, path in product_modules() + kit_and_bench_modules()
             for v in violations(module, path.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module,source,expected", [
    (f"{A}.domain.planted", "import grpc\n", f"only {A}.rpc"),
    (f"{A}.domain.planted", f"def f():\n    from {A}.kernel import tc\n", f"allows {A}.domain"),
    (f"{A}.kernel.planted", f"from {A}.rpc.servicer import AgentServicer\n", f"allows {A}.domain, {A}.kernel"),
    (f"{A}.runtime", "from faultline.v1 import agent_pb2\n", f"only {A}.rpc"),
    (f"{A}.rpc.planted", f"from {C}.agents import client\n", f"allows {A}.domain"),
    (f"{C}.agents.planted", "from testkit.netns import wait_until\n", f"allows {C}.agents"),
    (f"{C}.model.planted", "import grpc\n", f"{C}.agents speak gRPC"),
    (f"{C}.env.planted", f"from {C}.run.runner import Run\n", f"{C}.env layer rule allows {C}.agents, {C}.model, "),
    (f"{C}.run.planted", f"from {C}.cli.main import main\n", f"{C}.run layer rule allows"),
    (f"{C}.suite.planted", "from faultline.examples.workloads import seqload\n", f"{C}.suite layer rule allows"),
    (f"{C}.pytest_plugin", "from controller.agents.client import AgentClient\n", "import faultline.controller"),
    (f"{A}.kernel.planted", "from ..rpc import gate\n", f"imports {A}.rpc"),
    (f"{C}.run.planted", "from testkit.netns import wait_until\n", f"{C}.run layer rule allows"),
    ("bench.planted", "from tests.fakes import fake_agent\n", "bench layer rule allows bench, testkit, faultline"),
    ("testkit.planted", "from tests.scenarios import partition\n", "testkit layer rule allows"),
])
def test_a_planted_violation_is_caught(tmp_path, module, source, expected) -> None:
    """A throwaway module breaking one rule: the checker names the line and the rule."""
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    found = violations(module, planted.read_text())
    assert len(found) == 1 and expected in found[0], found


def test_every_product_module_is_checked() -> None:
    names = {m for m, _ in product_modules()}
    assert {f"{A}.domain.engine", f"{A}.rpc.servicer", f"{C}.run.runner", f"{C}.cli.main",
            "faultline.examples.trading"} <= names


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among the modules of `graph` (module -> modules it imports), each once."""
    found, done = [], set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            cyc = path[path.index(m):]
            if frozenset(cyc) not in done:
                done.add(frozenset(cyc))
                found.append([*cyc, m])
            return
        for n in sorted(graph.get(m, ())):
            visit(n, [*path, m])

    for m in sorted(graph):
        visit(m, [])
    return found


def test_no_import_cycles() -> None:
    """Issue 20: there was cli.run_scenarios <-> demo.run_demo. Imports inside functions count."""
    mods = dict(product_modules())
    graph = {}
    for m, path in mods.items():
        source = path.read_text()
        named = {n for _, n in imports(m, source)}
        # `from pkg import mod` imports pkg.mod: count it as that module too
        named |= {f"{node.module}.{a.name}" for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.ImportFrom) and node.module for a in node.names}
        graph[m] = {n for n in named if n in mods and n != m}
    assert not cycles(graph), cycles(graph)
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]  # the checker finds a planted one

