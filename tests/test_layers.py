"""The package's layers (docs/architecture.md): every import, lazy ones in functions included, points
down (or stays in its layer), and no two modules import each other, directly or in a ring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "medglip"

#: Bottom to top; a module may import from its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"core", "errors", "modality"},
    {"io", "ontology", "case"},
    {"sources", "catalog"},
    {"dataset", "build", "model"},  # build: the deprecated alias of dataset
    {"train", "infer", "evaluate", "export"},
    {"context"},
    {"vqa", "report"},
    {"serve", "cli", "demo", "show", "protocol", "__main__"},
]


def _package(module: str) -> str:
    """``medglip.infer.grounder`` → ``infer``; ``medglip`` itself → ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(package: str) -> int:
    for i, names in enumerate(LAYERS):
        if package in names:
            return i
    raise AssertionError(f"package {package!r} is in no layer of docs/architecture.md: add it to LAYERS")


def _modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The medglip modules ``module`` imports anywhere in its file (TYPE_CHECKING blocks included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known and n != module}
    return found


MODULES = _modules()
GRAPH = {m: _imports(m, p, set(MODULES)) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "medglip"))
def test_imports_point_down_the_layers(module):
    here = _layer(_package(module))
    up = [t for t in sorted(GRAPH[module]) if _package(t) and _layer(_package(t)) > here]
    assert not up, f"{module} (layer {here}) imports from higher layers: {up}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over module imports (package __init__ files excluded,
    since importing a submodule runs them without a real dependency)."""
    graph = {m: {t for t in ts if not MODULES[t].name == "__init__.py"} for m, ts in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_an_upward_lazy_import_is_caught(tmp_path):
    """The check itself: an import inside a function of a core module, pointing at infer, is found."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from ..infer import grounder\n    return grounder\n")
    found = _imports("medglip.core.x", f, {"medglip.infer", "medglip.infer.grounder"})
    assert found == {"medglip.infer", "medglip.infer.grounder"}
    assert _layer(_package("medglip.infer.grounder")) > _layer(_package("medglip.core.x"))
