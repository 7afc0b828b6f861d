"""The package's layers (pyproject's `[tool.importlinter]`): nothing imports upward, lazy imports
included, and every top-level module has its place, so no two of them import each other; and no
two modules anywhere in the package import each other (no import cycle)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_eqssl"

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[test]')")
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")


def _lint_imports(cwd: pathlib.Path, **env) -> subprocess.CompletedProcess:
    """`lint-imports` on the package importable from `cwd` (PYTHONPATH in `env`), with `cwd`'s pyproject.toml."""
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    return subprocess.run(
        [*command, "--no-cache"], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def _contract() -> dict:
    (contract,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return contract


def test_the_package_keeps_its_layers():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_every_top_level_module_is_in_a_layer():
    layered = {name.strip() for line in _contract()["layers"] for name in line.split("|")}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert modules - layered == set(), "add them to the layers in pyproject.toml"
    assert layered - modules == set(), "no such modules: remove them from the layers in pyproject.toml"


def test_a_new_lazy_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "keras_eqssl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(copy / "nn" / "mlp.py", "a") as f:
        f.write("\n\ndef _upward():\n    from keras_eqssl.methods import PairModel\n\n    return PairModel\n")
    result = _lint_imports(tmp_path, PYTHONPATH=str(tmp_path))
    assert result.returncode != 0, result.stdout[-4000:]
    assert "keras_eqssl.nn is not allowed to import keras_eqssl.methods" in result.stdout
    assert "keras_eqssl.nn.mlp -> keras_eqssl.methods" in result.stdout


def import_cycles(package: str) -> list[list[str]]:
    """The groups of modules of `package` that import each other, directly or through others (lazy imports
    included): the strongly connected components of the import graph with more than one module."""
    import grimp

    graph = grimp.build_graph(package)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_two_modules_import_each_other():
    assert import_cycles("keras_eqssl") == []


def test_a_cycle_is_found(tmp_path, monkeypatch):
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def f():\n    from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclic") == [["cyclic.a", "cyclic.b"]]
