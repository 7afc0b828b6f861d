"""`keras_eqssl.probes` has no import cycle, and each shared name is defined in one place (results.py)."""

from __future__ import annotations

import ast
import pathlib

import keras_eqssl.probes

PACKAGE = pathlib.Path(keras_eqssl.probes.__file__).parent
SHARED = ("PROBES", "PARTS", "HEADS", "REGRESSION_HEADS", "CLASSIFIERS", "THREEDIE_TARGETS", "FAMILIES", "METRICS")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["keras_eqssl.probes", *parts])] = path
    return out


def _imports(path: pathlib.Path, modules) -> set[str]:
    """Probe modules imported anywhere in the file (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def test_no_import_cycle_between_probe_modules():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    graph["keras_eqssl.probes"] = set()  # the package's lazy table only names modules
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + ".") and node.endswith("plots"):
                continue  # a package re-exporting its own submodules
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_each_shared_name_is_defined_once_in_results():
    where = {}
    for module, path in _modules().items():
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Name) and target.id in SHARED:
                    where.setdefault(target.id, []).append(module)
    assert set(where) == set(SHARED)
    assert all(modules == ["keras_eqssl.probes.results"] for modules in where.values()), where
