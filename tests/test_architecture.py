"""The rooms of recs/ and the one direction imports run: cli -> jobs -> stages -> core.

Read from the source with `ast` (nothing is imported), so a wrong import fails here, in CI,
before it can hide behind an import inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import REPO

# room -> the rooms (or single modules) its modules may import from recs
ALLOWED = {
    "core": {"core"},
    "stages": {"core", "stages"},
    "quality": {"core", "stages", "quality"},
    "tools": {"core", "stages", "tools"},
    "engines": {"core", "engines"},  # where ranges run; only engines.ray_cluster imports ray
    "jobs": {"core", "engines", "stages", "quality.metrics", "jobs"},  # gate: only the metrics
    "cli": {"core", "stages", "quality", "tools", "jobs"},
    "__main__": {"cli"},
    "__init__": set(),
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name; jobs/ is installed as recs.jobs."""
    found = {}
    for root, prefix in ((REPO / "recs", "recs"), (REPO / "jobs", "recs.jobs")):
        for path in sorted(root.rglob("*.py")):
            if "jobs" in path.relative_to(REPO).parts[1:2] and root.name == "recs":
                continue  # recs/jobs is a link to jobs/, read once as jobs/
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__" and len(parts) > 1:
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def room(name: str) -> str:
    """recs.stages.rerank -> stages; recs.cli -> cli; recs.jobs.nightly -> jobs."""
    return name.split(".")[1] if name.count(".") else "__init__"


def recs_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported recs module, line, at module level) for every import of recs in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "recs" or name.startswith("recs."):
                found.append((name, node.lineno, id(node) in top))
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module an imported name lives in (from recs.x import y: y may be a function)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def problems(known: dict[str, Path]) -> list[str]:
    found = []
    for name, path in known.items():
        here = room(name)
        for target, line, at_top in recs_imports(path):
            module = resolve(target, known)
            shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            where = f"{shown}:{line} imports {target}"
            if not at_top:
                found.append(f"{where} inside a function: import at the top of the module")
            if module is None or module == "recs":
                if target not in ("recs", "recs.__version__"):
                    found.append(f"{where}: no such module")
                continue
            allowed = ALLOWED.get(here, set())
            sub = module.removeprefix("recs.")
            if not any(sub == a or sub.startswith(a + ".") for a in allowed):
                found.append(f"{where}: the {here} room may import only {sorted(allowed)}")
    return found


def cycles(known: dict[str, Path]) -> list[list[str]]:
    """Import cycles among the package's modules (each found once, from its first module)."""
    graph = {
        name: {m for t, _, _ in recs_imports(path)
               if (m := resolve(t, known)) not in (None, "recs")}
        for name, path in known.items()
    }
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_every_module_sits_in_a_known_room() -> None:
    known = modules()
    assert "recs.stages.recipe" in known and "recs.jobs.nightly" in known
    assert {room(n) for n in known} <= set(ALLOWED), sorted({room(n) for n in known})


def test_imports_run_one_way() -> None:
    assert problems(modules()) == []


def test_no_import_cycles() -> None:
    assert cycles(modules()) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from recs.quality import metrics\n", "the stages room may import only"),
        ("def f():\n    from recs.core import errors\n", "inside a function"),
        ("from recs.jobs.nightly import run\n", "the stages room may import only"),
    ],
)
def test_the_check_catches_a_wrong_import(tmp_path: Path, source: str, message: str) -> None:
    known = modules()
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    known["recs.stages.bad"] = bad
    assert any(message in p for p in problems(known)), problems(known)


def test_the_check_catches_a_cycle(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from recs.stages import b\n")
    b.write_text("from recs.stages.a import thing\n")
    known = {"recs.stages.a": a, "recs.stages.b": b}
    assert cycles(known) == [["recs.stages.a", "recs.stages.b", "recs.stages.a"]]
