"""Your own images: a flat (unlabelled) or labelled image folder and a tfds dataset train and are
scored; the classification probes run on labels and are skipped, with the reason, without."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from train_helpers import mock_prepared_tfds

from keras_eqssl.data.image_files import BadFileError
from keras_eqssl.data.image_folder import FLAT, LABELLED, image_folder, image_folder_layout, list_image_folder
from tests.run_helpers import ROOT, TIMEOUT_S, env, train_args

COLOURS = {"a_red": (200, 30, 30), "b_blue": (30, 30, 200)}


def _write_images(folder, n: int, colour=None, seed: int = 0):
    """`n` 20x24 PNGs in `folder`: noise around `colour` (random colours when None)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = np.array(colour if colour is not None else rng.integers(0, 256, 3), float)
        pixels = np.clip(base + rng.normal(0, 40, (20, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:02d}.png")
    return folder


def _flat(tmp_path, n: int = 24):
    return _write_images(tmp_path / "flat", n)


def _labelled(tmp_path, n: int = 24):
    root = tmp_path / "labelled"
    for k, (name, colour) in enumerate(COLOURS.items()):
        _write_images(root / name, n // len(COLOURS), colour, seed=k)
    return root


def test_flat_folder_is_unlabelled(tmp_path):
    root = _flat(tmp_path, 5)
    assert image_folder_layout(root) == FLAT
    listing = list_image_folder(root)
    assert not listing.labelled and listing.class_names == () and listing.labels == (-1,) * 5
    elements = list(image_folder(root, image_size=8).as_numpy_iterator())
    assert len(elements) == 5 and all(sorted(e) == ["image"] and e["image"].shape == (8, 8, 3) for e in elements)


def test_labelled_folder_keeps_its_labels(tmp_path):
    root = _labelled(tmp_path, 6)
    assert image_folder_layout(root) == LABELLED
    elements = list(image_folder(root, image_size=8, shuffle=False).as_numpy_iterator())
    assert [int(e["label"]) for e in elements] == [0, 0, 0, 1, 1, 1]


def test_mixed_empty_and_unreadable_folders_are_named(tmp_path):
    mixed = _flat(tmp_path, 2)
    (mixed / "cats").mkdir()
    with pytest.raises(BadFileError, match=re.escape(str(mixed)) + ".*both 2 image.*1 subfolder.*cats"):
        image_folder(mixed, 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    with pytest.raises(BadFileError, match=re.escape(str(empty)) + ".*holds no images"):
        image_folder(empty, 8)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    for i in range(2):
        (unreadable / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(BadFileError, match=re.escape(str(unreadable)) + ".*no usable images"):
        image_folder(unreadable, 8, skip_bad=True)


@pytest.mark.slow  # importing tensorflow_datasets: about 3 s
def test_evaluate_data_tfds_with_mock_data():
    from keras_eqssl.cli.evaluate import eval_data

    with mock_prepared_tfds(16):
        data = eval_data("tfds:mnist:train", num_images=12, image_size=16, families=["rotation"], repeats=1)
    images, labels = data.images
    assert images.shape == (12, 16, 16, 3) and labels.shape == (12,) and not data.no_labels
    with pytest.raises(ValueError, match="tfds:NAME"):
        eval_data("tfds:", num_images=4)
    with pytest.raises(ValueError, match="neither a folder"):
        eval_data("no_such_source_or_folder", num_images=4)


def test_evaluate_data_flat_folder_has_no_labels(tmp_path, capsys):
    from keras_eqssl.cli.evaluate import eval_data

    root = _flat(tmp_path, 6)
    data = eval_data(str(root), num_images=6, image_size=8, families=["rotation"], repeats=1)
    assert data.images[1] is None and data.no_labels == f"no labels: {root} has no class subfolders"
    assert f"skipping the classification probes: no labels: {root}" in capsys.readouterr().out


def _run(args, cwd=ROOT) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _train_and_score(tmp_path, root, main_eval: bool) -> tuple[str, str, str]:
    """Trains 4 steps on `root` with the main job, then scores its export with keras-eqssl-evaluate."""
    workdir = tmp_path / f"run_{root.name}"
    eval_flags = ["--config.eval.enabled=True", "--config.eval.families=rotation", "--config.eval.repeats=2"]
    trained = _run(
        train_args(
            workdir,
            4,
            "--config.data.source=image_folder",
            f"--config.data.root={root}",
            "--config.data.num_images=24",
            "--config.data.image_size=40",
            *(eval_flags if main_eval else []),
        )
    )
    out = tmp_path / f"eval_{root.name}"
    scored = _run(
        [
            sys.executable,
            "-m",
            "keras_eqssl.cli.evaluate",
            f"--model={workdir / 'export'}",
            f"--data={root}",
            f"--out={out}",
            "--num_images=24",
            "--image_size=32",
            "--repeats=2",
            "--families=rotation",
        ]
    )
    return trained, scored, (out / "report.md").read_text()


def _classification_scores(report_dir) -> list:
    metrics = json.loads((report_dir / "metrics.json").read_text())
    return re.findall(r'"probe": "classification"', json.dumps(metrics))


@pytest.mark.slow
def test_flat_folder_trains_and_skips_classification(tmp_path):
    root = _flat(tmp_path)
    trained, scored, report = _train_and_score(tmp_path, root, main_eval=True)
    reason = f"no labels: {root} has no class subfolders"
    assert f"skipping the classification probes: {reason}" in trained
    assert f"classification skipped: {reason}" in (tmp_path / "run_flat" / "report" / "report.md").read_text()
    assert f"skipping the classification probes: {reason}" in scored
    assert f"classification skipped: {reason}" in report
    assert not _classification_scores(tmp_path / "eval_flat")
    assert "rotation" in report  # the other probes ran


@pytest.mark.slow
def test_labelled_folder_trains_and_runs_classification(tmp_path):
    root = _labelled(tmp_path)
    _, scored, report = _train_and_score(tmp_path, root, main_eval=False)
    assert "skipping the classification probes" not in scored and "classification skipped" not in report
    assert _classification_scores(tmp_path / "eval_labelled")
