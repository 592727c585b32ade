"""The backend's rooms: packages by stage with imports flowing one way and no cycles, the shared
protocol free of both sides' dependencies, training out of serving's reach, and imports inside
functions only for the optional heavy dependencies. Read from the source with ``ast`` (nothing
is imported), so a wrong import fails here before it fails a user."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parents[2]
# Each package may import its own and the ones before it, never one after it.
LAYERS = ["core", "geometry", "vision", "models", "reconstruct", "capture", "detail", "learned", "learned.train", "service"]
# Imports inside functions are allowed only for these (genuinely optional or heavy at import):
# torch in `health` (reported, not required) and for the optional FAN landmarker; mediapipe,
# which an environment set up before it was a requirement lacks (dlib then does the landmarks).
LAZY_OK = {"torch", "face_alignment", "mediapipe"}
# ... and the learned stages from the service's method table: they import torch, and a server must
# answer health and cancel before torch loads (the detail models load through their registry).
LAZY_FROM_SERVICE = "backend.learned"
STDLIB = set(sys.stdlib_module_names)


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(absolute module, at module level?) of every import in a file; an import inside a function
    body is not at module level."""
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []

    class Visitor(ast.NodeVisitor):
        depth = 0

        def visit_FunctionDef(self, node):
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

        def visit_Import(self, node):
            found.extend((a.name, self.depth == 0) for a in node.names)

        def visit_ImportFrom(self, node):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:  # "from . import x" imports the module x when there is one
                n = Path(*f"{target}.{a.name}".split("."))
                is_mod = (REPO / n).with_suffix(".py").is_file() or (REPO / n / "__init__.py").is_file()
                found.append((f"{target}.{a.name}" if is_mod else target, self.depth == 0))

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _files(package: str):
    return sorted(p for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts)


def _layer(mod: str) -> int:
    rest = mod.split(".", 1)[1] if "." in mod else ""
    best = -1
    for i, name in enumerate(LAYERS):
        if rest == name or rest.startswith(name + "."):
            best = i  # the longest match wins (learned.train over learned)
    return best


def test_every_backend_module_is_in_a_stage_package():
    loose = [_module(p) for p in _files("backend") if _layer(_module(p)) < 0 and p.parent.name == "backend"
             and p.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"modules outside the stage packages: {loose}"


def test_backend_imports_flow_one_way_without_cycles():
    graph = nx.DiGraph()
    upward = []
    for path in _files("backend"):
        src = _module(path)
        for target, _ in _imports(path):
            if not target.startswith("backend."):
                continue
            graph.add_edge(src, target)
            if src.endswith("__main__") or _layer(target) < 0:
                continue
            if _layer(target) > _layer(src):
                upward.append(f"{src} -> {target}")
    assert not upward, "imports against the flow core < geometry < vision < models < reconstruct < detail < " \
                       "learned < learned.train < service:\n" + "\n".join(upward)
    # a package's __init__ importing its own modules is not a cycle of code
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles}"


def test_imports_inside_functions_are_only_the_optional_heavy_ones():
    lazy = sorted({f"{_module(p)}: {t}" for pkg in ("backend", "protocol") for p in _files(pkg)
                   for t, top in _imports(p) if not top and t.split(".")[0] not in LAZY_OK
                   and not (_module(p).startswith("backend.service") and t.startswith(LAZY_FROM_SERVICE))})
    assert not lazy, "imports inside functions:\n" + "\n".join(lazy)


def test_protocol_needs_only_the_standard_library_and_numpy():
    foreign = sorted({f"{_module(p)}: {t}" for p in _files("protocol") for t, _ in _imports(p)
                      if t.split(".")[0] not in STDLIB | {"numpy", "protocol", "__future__"}})
    assert not foreign, foreign


def test_serving_never_imports_training_and_blender_side_never_imports_the_backend():
    wrong = [f"{_module(p)} -> {t}" for p in _files("backend") for t, _ in _imports(p)
             if t.startswith("backend.learned.train") and _layer(_module(p)) < LAYERS.index("learned.train")]
    assert not wrong, wrong
    addon = [f"{_module(p)} -> {t}" for pkg in ("addon",) for p in _files(pkg) for t, _ in _imports(p)
             if t.split(".")[0] == "backend" or ".backend." in f".{t}."]
    assert not addon, addon


def test_the_served_methods_never_reach_training_code():
    """The extension leaves ``backend/learned/train/`` out (blender_manifest.toml): a method the
    server answers must not import it, even on first use (one person's neural training is served,
    so it lives in ``backend.learned.neural.training``)."""
    served = [REPO / "backend" / "service" / f for f in ("methods.py", "server.py", "transport.py")]
    seen, todo, wrong = set(), [(p, _module(p)) for p in served], []
    while todo:
        path, mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        for t, _ in _imports(path):
            if t.startswith("backend.learned.train"):
                wrong.append(f"{mod} -> {t}")
            elif t.startswith("backend."):
                f = REPO.joinpath(*t.split("."))
                for cand in (f.with_suffix(".py"), f / "__init__.py"):
                    if cand.is_file():
                        todo.append((cand, t))
    assert not wrong, wrong
    assert "backend.learned.neural.training" in seen, "the check follows the lazy imports too"
