"""The scripts of examples/ run at tiny size (`--tiny`), each in its own process, and print what they promise."""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if p.name != "labelled_photos.py")  # the helper is no example


def run_example(name: str, *args: str, code: str | None = None) -> str:
    """stdout of `python examples/<name> --tiny ARGS` (or of `python -c code ARGS`); fails on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, *(["-c", code] if code else [str(EXAMPLES / name)]), "--tiny", *args]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_every_example_says_what_it_shows_and_how_to_run_it():
    assert len(SCRIPTS) >= 5
    for script in SCRIPTS:
        doc = ast.get_docstring(ast.parse(script.read_text()))
        assert doc and "What it shows" in doc, script.name
        assert f"python examples/{script.name}" in doc and "--tiny" in doc, script.name


@pytest.mark.slow
def test_fit_your_own_dataset():
    out = run_example("fit_your_own_dataset.py")
    losses = dict(re.findall(r"'(\w+)': (-?[\d.]+)", out.split("losses after the last step:")[1].splitlines()[0]))
    assert {"loss", "simclr", "recon"} <= set(losses) and all(float(v) < 1e3 for v in losses.values())
    assert "features: {'embedding': (4, 32), 'invariant': (4, 16), 'equivariant': (4, 16)}" in out


@pytest.mark.slow
def test_new_objective():
    out = run_example("new_objective.py")
    assert "registered: ViewMap" in out
    assert "config section: {'distance': 'mse', 'enabled': False, 'weight': 1.0}" in out
    terms = dict(re.findall(r"'(\w+)': (-?[\d.]+)", out.split("terms after the last step:")[1]))
    assert {"view_map", "view_map_gap", "vicreg"} <= set(terms) and float(terms["view_map"]) > 0


@pytest.mark.slow
def test_serve_with_tensorflow_needs_no_keras_eqssl(tmp_path):
    from method_helpers import make_pair_model

    from keras_eqssl.export import export_encoder

    export_encoder(make_pair_model("vicreg", split=(8, 8)), tmp_path / "encoder")
    script = EXAMPLES / "serve_with_tensorflow.py"
    code = (
        f"import runpy, sys; sys.argv = [{str(script)!r}] + sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
        "print('keras_eqssl imported:', any(m.startswith('keras_eqssl') for m in sys.modules))"
    )
    out = run_example("", str(tmp_path / "encoder"), code=code)
    assert "trained at [16, 16] split [8, 8] model PairModel" in out
    assert all(f"{key}: (4, {dim}) float32" in out for key, dim in (("embedding", 16), ("invariant", 8)))
    assert float(re.search(r"agree to (\S+)", out).group(1)) < 1e-4
    assert "keras_eqssl imported: False" in out


@pytest.mark.slow
def test_sklearn_features_beat_chance():
    out = run_example("sklearn_features.py")
    assert "features: (160, 32) (160, 32)" in out
    top1, chance = map(float, re.search(r"top-1: ([\d.]+) \(chance ([\d.]+)\)", out).groups())
    assert chance == pytest.approx(1 / 16, abs=1e-3) and top1 > 2 * chance  # photo identity: a strong signal


@pytest.mark.slow
def test_finetune_10_percent_prints_the_low_label_table():
    out = run_example("finetune_10_percent.py")
    assert "| top-1 (mean ± std over 2 seeds) | 10% labels (32) |" in out
    rows = dict(re.findall(r"^\| (\w+) \| ([\d.]+) ± [\d.]+ \|$", out, re.MULTILINE))
    assert set(rows) == {"constant", "linear", "finetune"} and all(0 <= float(v) <= 1 for v in rows.values())
    assert float(rows["linear"]) > float(rows["constant"])
