"""A small schema checker over YAML nodes, so that an error names the file, the line, the
field and what is allowed, and a whole file is checked before anything uses it.

    spec = Map({"retry": Map({"max_retry_attempts": Num(0, 100, integer=True)})})
    value = check_file(Path("contracts/resilience_config.yaml"), spec)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class SchemaError(ValueError):
    def __init__(self, file: str, line: int, path: str, allowed: str, got: object) -> None:
        self.file, self.line, self.path, self.allowed, self.got = file, line, path, allowed, got
        super().__init__(f"{file}:{line}: {path or '(top level)'}: {allowed}; got {got!r}")


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _scalar(node: Node) -> Any:
    return SafeConstructor().construct_object(node, deep=True) if isinstance(node, ScalarNode) else node


class Spec:
    def check(self, node: Node, path: str, file: str) -> Any:
        raise NotImplementedError

    def fail(self, node: Node, path: str, file: str, allowed: str) -> SchemaError:
        got = _scalar(node) if isinstance(node, ScalarNode) else type(node).__name__.removesuffix("Node").lower()
        return SchemaError(file, _line(node), path, allowed, got)


@dataclass(frozen=True)
class Num(Spec):
    low: float
    high: float
    integer: bool = False

    def check(self, node: Node, path: str, file: str) -> Any:
        v = _scalar(node)
        ok_type = isinstance(v, int) if self.integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not self.low <= v <= self.high:
            what = "an integer" if self.integer else "a number"
            raise self.fail(node, path, file, f"{what} from {self.low:g} to {self.high:g}")
        return v


@dataclass(frozen=True)
class Bool(Spec):
    def check(self, node: Node, path: str, file: str) -> Any:
        v = _scalar(node)
        if not isinstance(v, bool):
            raise self.fail(node, path, file, "true or false")
        return v


@dataclass(frozen=True)
class Str(Spec):
    choices: tuple[str, ...] = ()

    def check(self, node: Node, path: str, file: str) -> Any:
        v = _scalar(node)
        if not isinstance(v, str) or (self.choices and v not in self.choices) or not v:
            raise self.fail(node, path, file, f"one of {', '.join(self.choices)}" if self.choices
                            else "a non-empty string")
        return v


@dataclass(frozen=True)
class List(Spec):
    item: Spec
    min_len: int = 0

    def check(self, node: Node, path: str, file: str) -> Any:
        if not isinstance(node, SequenceNode) or len(node.value) < self.min_len:
            raise self.fail(node, path, file, f"a list of at least {self.min_len}")
        return [self.item.check(n, f"{path}[{i}]", file) for i, n in enumerate(node.value)]


@dataclass(frozen=True)
class Map(Spec):
    fields: Mapping[str, Spec]
    required: frozenset[str] = field(default_factory=frozenset)
    gone: Mapping[str, str] = field(default_factory=dict)  # a key that no longer exists -> what to write now

    def check(self, node: Node, path: str, file: str) -> Any:
        if not isinstance(node, MappingNode):
            raise self.fail(node, path, file, f"a mapping with keys {', '.join(self.fields)}")
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = _scalar(k)
            where = f"{path}.{key}" if path else str(key)
            if key in self.gone:
                raise SchemaError(file, _line(k), where, self.gone[key], key)
            if key not in self.fields:
                raise SchemaError(file, _line(k), where, f"not a known key; allowed: {', '.join(self.fields)}", key)
            if key in out:
                raise SchemaError(file, _line(k), where, "given once", "a second time")
            out[key] = self.fields[key].check(v, where, file)
        for k in sorted(self.required - out.keys()):
            raise SchemaError(file, _line(node), f"{path}.{k}" if path else k, "required", None)
        return out


@dataclass(frozen=True)
class Variant(Spec):
    """A mapping with exactly one of several keys (a step is `fault:`, `partition:` or `wait:`),
    plus fields common to all of them."""

    variants: Mapping[str, Spec]
    common: Mapping[str, Spec] = field(default_factory=dict)

    def check(self, node: Node, path: str, file: str) -> Any:
        keys = [_scalar(k) for k, _ in node.value] if isinstance(node, MappingNode) else []
        chosen = [k for k in keys if k in self.variants]
        if len(chosen) != 1:
            raise self.fail(node, path, file, f"a mapping with exactly one of {', '.join(self.variants)}")
        return Map({chosen[0]: self.variants[chosen[0]], **self.common}).check(node, path, file)


@dataclass(frozen=True)
class Template(Spec):
    """A string whose {placeholders} must be among `names` (host names, python, run_dir...)."""

    names: frozenset[str]

    def check(self, node: Node, path: str, file: str) -> Any:
        v = _scalar(node)
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)  # a bare port or number in a command line
        if not isinstance(v, str) or not v:
            raise self.fail(node, path, file, "a non-empty string")
        for name in PLACEHOLDER.findall(v):
            if name not in self.names:
                known = ", ".join("{" + n + "}" for n in sorted(self.names))
                raise self.fail(node, path, file, f"placeholders among {known}")
        return v


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def check_text(text: str, spec: Spec, file: str) -> Any:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SchemaError(file, mark.line + 1 if mark else 0, "", "valid YAML", str(e).splitlines()[0]) from None
    if node is None:
        raise SchemaError(file, 1, "", "a mapping", "an empty file")
    return spec.check(node, "", file)


def line_of(source: Path | str, dotted: str) -> int:
    """The line of a key (a.b[2].c) in a file (or its text) that has already passed its check;
    where the path stops existing, the line of the last part found (0 if none)."""
    node: Node | None = yaml.compose(source.read_text() if isinstance(source, Path) else source)
    line = 0
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(node, SequenceNode) or i >= len(node.value):
                return line
            node = node.value[i]
            line = _line(node)
            continue
        if not isinstance(node, MappingNode):
            return line
        match = next(((k, v) for k, v in node.value if _scalar(k) == part), None)
        if match is None:
            return line
        line, node = _line(match[0]), match[1]
    return line


def check_file(path: Path, spec: Spec) -> Any:
    return check_text(path.read_text(), spec, str(path))
