"""The library's shape: no import cycles, no private names across modules, no module too long to hold in mind."""

import ast
from pathlib import Path

import pytest

import brainalign

PACKAGE = Path(brainalign.__file__).resolve().parent
#: a module over this many lines says why in its opening docstring ("The module is longer than most ...")
LONG = 600
#: and none is longer than this
LONGEST = 800


def _module_name(path: Path) -> str:
    parts = ["brainalign", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """Every import of a library module in ``path`` (module level or inside functions): (module, names, line)."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            names = [a.name for a in node.names]
            # `from . import models` imports a module; `from .models import load_model` a name of one
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for sub in submodules:
                found.append((sub, [], node.lineno))
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            if rest:
                found.append((target, rest, node.lineno))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("brainalign"):
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("brainalign.")]
    return found


GRAPH = {name: sorted({m for m, _, _ in _imports(name, path) if m != name}) for name, path in MODULES.items()}


def test_the_import_parser_reads_relative_imports():
    assert "brainalign.cache" in GRAPH["brainalign.features"]
    assert "brainalign.models" in GRAPH["brainalign.encodability"]  # `from . import ..., models, ...`
    assert all(m in MODULES for deps in GRAPH.values() for m in deps), "an import resolved to no library module"


def test_no_import_cycles():
    """Tarjan's strongly connected components of the import graph: every one is a single module."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == [], f"modules that import each other: {cycles}"


def test_no_module_imports_another_modules_private_names():
    private = [f"{_module_name(path)}:{line} imports {names} from {module}"
               for name, path in MODULES.items() for module, names, line in _imports(name, path)
               if module != name and any(n.startswith("_") and not n.startswith("__") for n in names)]
    assert private == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small_or_say_why(name):
    path = MODULES[name]
    lines = len(path.read_text().splitlines())
    assert lines <= LONGEST, f"{name} has {lines} lines (at most {LONGEST}): split it along its seams"
    if lines > LONG:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "longer than most" in doc, f"{name} has {lines} lines and its docstring does not say why"
