"""Data flows one way, and the import graph says so: no module of asr imports, directly or
through others, a module that imports it (wherever the import stands, top or function)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "asr"


def import_graph() -> dict[str, set[str]]:
    """``{module: the asr modules it imports}`` for every module of ``asr/``, subpackages
    included (``models`` for ``asr/models/__init__.py``, ``models.ds2`` for ``asr/models/ds2.py``)."""
    paths = {_name(p): p for p in PACKAGE.rglob("*.py")}
    paths.pop("")  # asr/__init__.py: lazy re-exports only
    graph = {}
    for name, path in paths.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                deps |= _imported(node, name, path.name == "__init__.py", set(paths))
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("asr.")}
        graph[name] = (deps & set(paths)) - {name}
    return graph


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.ImportFrom, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    """The asr modules ``from X import a, b`` in module ``importer`` loads: ``X.a`` where that
    is a module, else ``X`` (relative imports resolved)."""
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        target = ".".join(base)
    elif node.module and node.module.split(".")[0] == "asr":
        target = node.module.partition(".")[2]
    else:
        return set()
    prefix = f"{target}." if target else ""
    return {f"{prefix}{a.name}" if f"{prefix}{a.name}" in modules else target for a in node.names} - {""}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            return cycle
    return None


def test_the_module_import_graph_has_no_cycle():
    graph = import_graph()
    assert {"train", "transcribe", "evaluation", "beam", "decoding", "greedy", "arpa", "formats", "models",
            "models.ds2"} <= set(graph)
    assert graph["models"] >= {"models.birnn", "models.ds2"} and "models" in graph["recognizer"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_subpackage_imports_are_resolved():
    node = lambda src: ast.parse(src).body[0]  # noqa: E731
    modules = {"models", "models.rnn", "models.ds2", "utils"}
    assert _imported(node("from asr.models.rnn import X"), "models.ds2", False, modules) == {"models.rnn"}
    assert _imported(node("from asr.models import rnn, build"), "train", False, modules) == {"models.rnn", "models"}
    assert _imported(node("from .rnn import X"), "models.ds2", False, modules) == {"models.rnn"}
    assert _imported(node("from . import ds2"), "models", True, modules) == {"models.ds2"}
    assert _imported(node("from ..utils import X"), "models.ds2", False, modules) == {"utils"}
    assert _imported(node("from torch import nn"), "models.ds2", False, modules) == set()


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_leaves_import_nothing_above_them():
    graph = import_graph()
    assert graph["utils"] == set()
    assert graph["text"] <= {"utils"} and graph["arpa"] <= {"utils"}
    assert "beam" not in graph["greedy"] and "decoding" not in graph["beam"]


def test_no_function_in_the_package_is_longer_than_80_lines():
    """A function that outgrows a screen gets split into named steps (README, Development)."""
    root = Path(__file__).resolve().parent.parent / "asr"
    long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
