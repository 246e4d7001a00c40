"""The package's layers: each imports only from its own layer and those below it, and no
two packages import each other. Read from the source with ``ast``, so imports inside
functions and under TYPE_CHECKING count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import aerialseg

ROOT = Path(aerialseg.__file__).parent
# Bottom to top; top-level modules not named here (errors.py, files.py) are the bottom.
# public, the Python API, defines every command's options; the server and the command
# line are made from it.
LAYERS = ["data", "models", "inference", "evaluation", "training", "public", "api", "cli"]
TOP = {"__init__", "__main__"}  # the package's lazy names: above everything


def _unit(module: str) -> str:
    """The package (or top-level module) a dotted ``aerialseg.*`` module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(unit: str) -> int:
    if unit in TOP:
        return len(LAYERS)
    return LAYERS.index(unit) if unit in LAYERS else 0


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``aerialseg.*`` module ``path`` imports, wherever the import statement is."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").is_file()
                found.add(
                    sub if is_module or (ROOT.parent / sub.replace(".", "/")).is_dir() else base
                )
    # The package itself (``from aerialseg import __version__``) imports nothing eagerly:
    # every submodule import loads it anyway.
    return {m for m in found if m.startswith("aerialseg.")}


def _graph() -> dict[str, dict[str, set[str]]]:
    """unit -> unit it imports -> the modules that do it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = _module_name(path)
        for target in _imports(path):
            a, b = _unit(source), _unit(target)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, set()).add(f"{source} -> {target}")
    return graph


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(
        line
        for a, targets in _graph().items()
        for b, lines in targets.items()
        if _layer(b) > _layer(a)
        for line in lines
    )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_two_packages_import_each_other():
    graph = _graph()
    cycles = []
    for a, targets in graph.items():
        for b in targets:
            # any path back from b to a closes a cycle
            seen, todo = set(), [b]
            while todo:
                node = todo.pop()
                if node == a:
                    cycles.append(f"{a} <-> {b}: {sorted(graph[a][b])[0]}")
                    break
                if node not in seen:
                    seen.add(node)
                    todo.extend(graph.get(node, {}))
    assert not cycles, "package import cycles:\n" + "\n".join(sorted(cycles))


def test_the_check_sees_lazy_imports():
    """A function-level import (public.py has many) is found."""
    public = _imports(ROOT / "public.py")
    assert "aerialseg.training.run" in public
