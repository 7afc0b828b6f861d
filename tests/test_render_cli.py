"""The render command end to end, and its errors on bad input (named files, a missing GL stack)."""

import ctypes.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from keras_eqssl.data.render import gl, jobs, meshes

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, "-m", "keras_eqssl.cli.render", "--quiet", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _mesh_dir(tmp_path):
    import trimesh

    for name, mesh in (("cube", trimesh.creation.box()), ("ball", trimesh.creation.icosphere(2))):
        for k in range(3):
            (tmp_path / name / "train").mkdir(parents=True, exist_ok=True)
            mesh.export(tmp_path / name / "train" / f"{name}_{k}.stl")
    bad = tmp_path / "cube" / "train" / "cube_broken.ply"
    bad.write_bytes(b"ply\nformat nonsense 9.9\nelement vertex banana\nend_header\n\x00\x01")
    return bad


def test_cli_renders_a_root_with_splits_and_sheet(tmp_path):
    out, png = tmp_path / "m3d", tmp_path / "sheet.png"
    result = _cli(f"--out={out}", "--num_objects=24", "--views=2", "--size=32", "--workers=2", f"--sheet={png}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote 48 images of 24 objects" in result.stdout
    assert png.exists() and png.stat().st_size > 1000
    train, val = np.load(out / "train_images.npy"), np.load(out / "val_images.npy")
    assert len(train) + len(val) == 24 and not set(train) & set(val)
    labels = np.load(out / "train_labels.npy")
    assert labels.dtype == np.int64 and set(labels) == set(range(12))
    assert len(val) == 12  # 2 objects per class: one each side
    lat = np.load(out / train[0].strip("/") / "latent_1.npy")
    assert lat.dtype == np.float32 and lat.shape == (7,)


def test_unreadable_mesh_is_named(tmp_path):
    bad = _mesh_dir(tmp_path / "meshes")
    todo = jobs.mesh_dir_jobs(tmp_path / "meshes")
    settings = jobs.Settings(str(tmp_path / "out"), views=1, size=32)
    with pytest.raises(meshes.MeshError, match=str(bad).replace(".", r"\.")):
        jobs.render_jobs(todo, settings, workers=1, progress=False)
    with pytest.warns(UserWarning, match="cube_broken.ply"):
        report = jobs.render_jobs(todo, settings, workers=1, skip_bad=True, progress=False)
    assert [j.path for j, _ in report.skipped] == [str(bad)] and len(report.done) == 6


def test_cli_unreadable_mesh_error_and_skip_bad(tmp_path):
    bad = _mesh_dir(tmp_path / "meshes")
    result = _cli(f"--out={tmp_path / 'out'}", f"--mesh_dir={tmp_path / 'meshes'}", "--views=1", "--size=32")
    assert result.returncode == 2
    assert f"cannot read mesh file {bad}" in result.stderr
    result = _cli(
        f"--out={tmp_path / 'out'}", f"--mesh_dir={tmp_path / 'meshes'}", "--views=1", "--size=32", "--skip_bad"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 mesh files" in result.stderr and "wrote 6 images of 6 objects" in result.stdout


def test_empty_class_folder_is_named(tmp_path):
    _mesh_dir(tmp_path)
    (tmp_path / "empty_class" / "train").mkdir(parents=True)
    (tmp_path / "empty_class" / "train" / "notes.txt").write_text("no meshes here")
    with pytest.raises(meshes.MeshError, match="class folder .*empty_class holds no mesh files"):
        meshes.find_meshes(tmp_path)
    with pytest.raises(meshes.MeshError, match="no class folders"):
        meshes.find_meshes(tmp_path / "empty_class" / "train")


def test_no_gl_names_the_missing_library(monkeypatch, tmp_path):
    def no_context(backend):
        raise Exception("libEGL.so.1: cannot open shared object file")  # what glcontext raises

    monkeypatch.setattr(gl, "_standalone_context", no_context)
    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None if name == "EGL" else real(name))
    with pytest.raises(gl.GLUnavailableError) as info:
        gl.create_context()
    message = str(info.value)
    assert "libEGL" in message and "apt-get install libegl1" in message and "libgbm" not in message
    settings = jobs.Settings(str(tmp_path), views=1, size=32)
    with pytest.raises(gl.GLUnavailableError, match="libegl1"):
        jobs.render_jobs(jobs.procedural_jobs(1), settings, workers=1, progress=False)


def test_no_gl_with_all_libraries_present_says_so(monkeypatch):
    monkeypatch.setattr(gl, "_standalone_context", lambda backend: (_ for _ in ()).throw(Exception("no display")))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.1")
    with pytest.raises(gl.GLUnavailableError, match="libraries were found but no context"):
        gl.create_context()
