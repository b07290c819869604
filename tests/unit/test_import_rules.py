"""The layers, as a rule on imports (every import, also those inside functions).

Agent: kernel mechanisms <- domain <- runtime <- rpc (the servicer) <- cli. The domain imports
nothing of the agent but itself; neither it, the kernel layer nor the runtime imports grpc or
the stubs (only agent/rpc translates). Nothing of the product imports the tests; the agent never
imports the controller or the trading lab. A planted violation is caught (the last tests).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "controller", "examples")
GRPC = ("grpc", "faultline.v1", "google.protobuf")

# module prefix -> (prefixes of this repo it may import, may it import grpc/stubs); longest prefix wins.
RULES: dict[str, tuple[tuple[str, ...], bool]] = {
    "agent.domain": (("agent.domain",), False),
    "agent.kernel": (("agent.domain", "agent.kernel"), False),
    "agent.runtime": (("agent.domain", "agent.kernel", "agent.runtime"), False),
    "agent.rpc": (("agent.domain", "agent.kernel", "agent.runtime", "agent.rpc"), True),
    "agent.cli": (("agent",), True),
    "agent": (("agent",), False),                       # agent/__init__.py: the version only
    "controller": (("controller", "agent"), True),      # agent: its version, in the journal
    "examples": (("examples", "controller"), False),
}
OURS = ("agent", "controller", "examples", "tests", "bench")


def _rule(module: str) -> tuple[tuple[str, ...], bool]:
    best = max((p for p in RULES if module == p or module.startswith(p + ".")), key=len)
    return RULES[best]


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
        if name == "agent":  # the package root: __version__ only, for Health and journals
            continue
        if _within(name, GRPC) and not grpc_ok:
            out.append(f"{module}:{line} imports {name}: only agent.rpc, agent.cli and the controller speak gRPC")
        elif _within(name, OURS) and not _within(name, allowed):
            out.append(f"{module}:{line} imports {name}: {module.split('.')[0]} layer rule allows "
                       f"{', '.join(allowed)}")
    return out


def product_modules() -> list[tuple[str, Path]]:
    mods = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods.append((".".join(parts), path))
    return mods


def test_the_tree_follows_the_import_rules() -> None:
    found = [v for module, path in product_modules() for v in violations(module, path.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module,source,expected", [
    ("agent.domain.planted", "import grpc\n", "only agent.rpc"),
    ("agent.domain.planted", "def f():\n    from agent.kernel import tc\n", "allows agent.domain"),
    ("agent.kernel.planted", "from agent.rpc.servicer import AgentServicer\n", "allows agent.domain, agent.kernel"),
    ("agent.runtime", "from faultline.v1 import agent_pb2\n", "only agent.rpc"),
    ("agent.rpc.planted", "from controller import client\n", "allows agent.domain"),
    ("controller.planted", "from tests.netns import wait_until\n", "allows controller, agent"),
    ("agent.kernel.planted", "from ..rpc import gate\n", "imports agent.rpc"),
])
def test_a_planted_violation_is_caught(tmp_path, module, source, expected) -> None:
    """A throwaway module breaking one rule: the checker names the line and the rule."""
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    found = violations(module, planted.read_text())
    assert len(found) == 1 and expected in found[0], found


def test_every_product_module_is_checked() -> None:
    names = {m for m, _ in product_modules()}
    assert {"agent.domain.engine", "agent.rpc.servicer", "controller.runner", "examples.trading"} <= names
