"""Export and serving on bad input: the output directory, concurrent exports, images the encoder cannot take.

One untrained tiny PairModel (the one of test_export.py) is exported once for the module; the
command-line tests fail before any model loads, but each costs a process start (~10 s on 2
cores): they are marked slow, the Python API's tests of the same checks are not.
"""

from __future__ import annotations

import multiprocessing
import pathlib
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
from test_export import ENV, SIZE, tiny_model

import keras_eqssl.export as api  # its error types by attribute: each test fails alone on a version without them
from keras_eqssl.errors import InputError
from keras_eqssl.export import export_encoder, load_encoder


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """(export directory, `.keras` file of the same model)."""
    root = tmp_path_factory.mktemp("edge")
    model.save(root / "model.keras")
    return export_encoder(model, root / "encoder"), root / "model.keras"


@pytest.fixture(scope="module")
def encoder(exported):
    return load_encoder(exported[0])


def run_export_cli(keras_file, out, **env):
    """`keras-eqssl-export` in a child process, run from the output's folder (the package as this process finds it)."""
    return subprocess.run(
        [sys.executable, "-m", "keras_eqssl.cli.export", f"--checkpoint={keras_file}", f"--out={out}"],
        cwd=pathlib.Path(keras_file).parent, env=dict(ENV, **env), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def unwritable_dir(tmp_path) -> pathlib.Path:
    """A directory in which no entry can be created: read-only for a user; `/sys/kernel` for root, who ignores modes."""
    for candidate in (tmp_path / "read_only", pathlib.Path("/sys/kernel")):
        if candidate.parent == tmp_path:
            candidate.mkdir()
            candidate.chmod(0o555)
        try:
            (candidate / "keras_eqssl_probe").mkdir()
        except OSError:
            return candidate
        (candidate / "keras_eqssl_probe").rmdir()
    pytest.skip("no directory here refuses writes")


def entries(directory) -> list[str]:
    return sorted(p.name for p in pathlib.Path(directory).iterdir())


# --- an earlier export with a user's file: refused, the file kept ---------------------------------
def test_export_keeps_a_users_file_in_an_earlier_export(model, tmp_path, capsys):
    out = tmp_path / "encoder"
    export_encoder(model, out)
    (out / "README.txt").write_text("mine")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"holds an earlier export and also README.txt, which no export wrote"):
        export_encoder(model, out)
    assert (out / "README.txt").read_text() == "mine"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # the export untouched too
    assert entries(tmp_path) == ["encoder"]  # no temporary or lock left

    (out / "README.txt").unlink()
    (out / "variables" / "notes.txt").write_text("mine too")
    with pytest.raises(ValueError, match=r"variables/notes.txt, which no export wrote.*choose another output"):
        export_encoder(model, out)
    (out / "variables" / "notes.txt").unlink()
    capsys.readouterr()
    export_encoder(model, out, resize="area")  # an export and nothing else: replaced, and said
    assert f"replaced the earlier export in {out}" in capsys.readouterr().out
    assert load_encoder(out).metadata["resize"] == "area"


def test_export_into_an_empty_directory_says_nothing_replaced(model, tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    export_encoder(model, out)
    assert "replaced" not in capsys.readouterr().out
    assert entries(out) == ["assets", "fingerprint.pb", "keras_eqssl_export.json", "saved_model.pb", "variables"]


@pytest.mark.slow  # one process start (~10 s on 2 cores); export_encoder's own check runs by default
def test_cli_refuses_an_out_holding_a_users_file(exported, tmp_path):
    export_dir, keras_file = exported
    out = tmp_path / "served"
    export_encoder(tiny_model(), out)
    (out / "notes.md").write_text("mine")
    result = run_export_cli(keras_file, out)
    assert result.returncode == 2, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: export_encoder: {out} holds an earlier export and also notes.md")
    assert "Remove them or choose another output directory" in error and "Traceback" not in result.stderr
    assert (out / "notes.md").read_text() == "mine"


# --- NumPy input the uint8 signature would cast ----------------------------------------------------
@pytest.mark.parametrize(
    "images, received, advice",
    [
        (np.full((2, 8, 8, 3), 0.7, np.float32), r"float32 \(min 0.7, max 0.7\)", r"multiply by 255 and cast to uint8"),
        (np.full((2, 8, 8, 3), 300, np.uint16), r"uint16 \(min 300, max 300\)", r"wrap them modulo 256"),
        (np.arange(256, 640).reshape(2, 8, 8, 3), r"int64 \(min 256, max 639\)", r"wrap them modulo 256"),
        (np.full((2, 8, 8, 3), 7, np.int32), r"int32 \(min 7, max 7\)", r"another integer type: images.astype"),
    ],
    ids=["float32_0_1", "uint16_300", "int64_256_up", "int32_in_range"],
)
def test_load_encoder_uint8_signature_refuses_what_tensorflow_would_cast(encoder, images, received, advice):
    uint8 = encoder.signatures["serving_uint8"]
    with pytest.raises(ValueError, match=rf"serving_uint8 of .* takes uint8 images in \[0, 255\]; received dtype {received}") as err:  # fmt: skip
        uint8(images=images)
    message = str(err.value)
    assert re.search(advice, message) and len(message) < 400, message
    assert isinstance(err.value, InputError)
    if images.dtype.kind in "iu":  # integers that are not uint8: the dtype router refuses them too (floats are served)
        with pytest.raises(ValueError, match=rf"received dtype {received}.*{advice}"):
            encoder(images)


def test_load_encoder_signatures_serve_what_they_take_as_tensorflow_does(encoder, exported):
    raw = tf.saved_model.load(exported[0]).signatures
    pixels = np.random.default_rng(0).integers(0, 256, (3, 20, 12, 3), dtype=np.uint8)
    expected = raw["serving_uint8"](images=tf.constant(pixels))["embedding"].numpy()
    checked = {
        "uint8 array": encoder.signatures["serving_uint8"](images=pixels),
        "uint8 tensor": encoder.signatures["serving_uint8"](images=tf.constant(pixels)),
        "float array": encoder.signatures["serving_default"](images=pixels / np.float32(255)),
        "float64 array": encoder.signature(images=pixels / 255.0),
    }
    for name, out in checked.items():
        np.testing.assert_allclose(out["embedding"].numpy(), expected, atol=1e-5, err_msg=name)
    assert "serving_uint8:\n  input  images: uint8" in encoder.describe()  # attributes of the concrete function


def test_raw_uint8_signature_casts_numpy_as_the_docs_say(exported):
    """docs/serving.md: TensorFlow alone converts a NumPy array to uint8 silently, and refuses a tensor of another dtype."""
    raw = tf.saved_model.load(exported[0]).signatures["serving_uint8"]
    pixels = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    wrapped = raw(images=pixels.astype(np.int64) + 256)["embedding"].numpy()  # 256..511 -> 0..255
    np.testing.assert_allclose(wrapped, raw(images=tf.constant(pixels))["embedding"].numpy(), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor but is a float tensor"):
        raw(images=tf.constant(pixels / np.float32(255)))


# --- shapes: named, never the values ---------------------------------------------------------------
def test_serving_names_the_shape_it_expected_and_received(encoder):
    image = np.random.default_rng(2).random((SIZE, SIZE, 3)).astype(np.float32)
    calls = {
        "Encoder": encoder,
        "serving_default": encoder.signatures["serving_default"],
        "serving_uint8": encoder.signatures["serving_uint8"],
    }
    for name, call in calls.items():
        one = image if name != "serving_uint8" else (image * 255).astype(np.uint8)
        serve = call if name == "Encoder" else lambda x, call=call: call(images=x)
        with pytest.raises(
            api.ImagesError, match=r"\(N, H, W, 3\).*received shape \(32, 32, 3\).*images\[None\]"
        ) as err:
            serve(one)
        assert len(str(err.value)) < 300, str(err.value)  # the shape, not the array
        assert tuple(serve(one[None])["embedding"].shape) == (1, 32)  # the fix the message gives works
    rgba = np.full((2, SIZE, SIZE, 4), 0.5, np.float32)
    for call in (encoder, lambda x: encoder.signatures["serving_default"](images=x)):
        with pytest.raises(
            api.ImagesError, match=r"\(N, H, W, 3\).*received shape \(2, 32, 32, 4\); 4 channels"
        ) as err:
            call(rgba)
        assert "0.5" not in str(err.value)
    with pytest.raises(api.ImagesError, match=r"received a tensor of shape \(32, 32, 3\).*images\[None\]"):
        encoder.signatures["serving_default"](images=tf.constant(image))
    with pytest.raises(api.ImagesError, match=r"takes uint8 images in \[0, 255\] \(uint8\); received a float32 tensor"):
        encoder.signatures["serving_uint8"](images=tf.constant(image[None]))


# --- an output directory that cannot be written -----------------------------------------------------
def test_export_names_an_unwritable_out(model, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(api.ExportWriteError, match=rf"cannot write {tmp_path}/a_file/out: {tmp_path}/a_file is a file"):
        export_encoder(model, tmp_path / "a_file" / "out")
    with pytest.raises(api.ExportDirError, match=r"a_file exists and is not a directory"):
        export_encoder(model, tmp_path / "a_file")
    locked = unwritable_dir(tmp_path)
    with pytest.raises(api.ExportWriteError, match=rf"cannot write {locked}/out: .*Choose an output directory") as err:
        export_encoder(model, locked / "out")
    assert isinstance(err.value, OSError) and isinstance(err.value, InputError)


@pytest.mark.slow  # two processes each (~10 s apiece on 2 cores)
@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_cli_names_an_unwritable_out_in_one_line(exported, tmp_path, where):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "out" if where == "under_a_file" else unwritable_dir(tmp_path) / "out"
    result = run_export_cli(exported[1], out)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: export_encoder: cannot write {out}: ")
    debug = run_export_cli(exported[1], out, KERAS_EQSSL_DEBUG="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ExportWriteError" in debug.stderr


# --- two exports into one directory -----------------------------------------------------------------
def _hold_lock(out, locked, release):
    """In a forked process: holds the export lock on `out` until `release` is set."""
    with api.export_lock(out):
        locked.set()
        release.wait(60)


def test_a_second_export_into_the_same_directory_fails_at_once(model, tmp_path):
    out = tmp_path / "busy"
    fork = multiprocessing.get_context("fork")  # the child only locks a file: no TensorFlow in it
    locked, release = fork.Event(), fork.Event()
    holder = fork.Process(target=_hold_lock, args=(out, locked, release))
    holder.start()
    try:
        assert locked.wait(60)
        with pytest.raises(api.ExportBusyError, match=f"another export is writing {out}"):
            export_encoder(model, out)
        assert not out.exists()
    finally:
        release.set()
        holder.join(60)
    assert holder.exitcode == 0
    export_encoder(model, out)  # the first one is done: the directory is free
    assert entries(tmp_path) == ["busy"]  # the lock file is gone with its holder


@pytest.mark.slow  # one process start (~10 s on 2 cores)
def test_cli_says_another_export_is_writing(exported, tmp_path):
    out = tmp_path / "busy"
    with api.export_lock(out):  # this process is the other export
        result = run_export_cli(exported[1], out)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: export_encoder: another export is writing {out}")
    assert entries(tmp_path) == []


def test_threads_exporting_to_one_directory_take_turns(model, tmp_path):
    out = tmp_path / "threads"
    locked, release, errors = threading.Event(), threading.Event(), []

    def hold():
        with api.export_lock(out):
            with api.export_lock(out):  # the same thread may nest it (the app holds it around export_encoder)
                locked.set()
                release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(60)
        with pytest.raises(api.ExportBusyError, match=f"another export is writing {out}"):
            export_encoder(model, out)
    finally:
        release.set()
        holder.join(60)
    workers = [threading.Thread(target=lambda: _export_or_record(model, out, errors)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert all(isinstance(e, api.ExportBusyError) for e in errors), errors  # a loser is told, never a mixed export
    assert len(errors) < 2 and load_encoder(out).output_dims["embedding"] == 32
    assert entries(tmp_path) == ["threads"]


def _export_or_record(model, out, errors):
    try:
        export_encoder(model, out)
    except Exception as err:  # recorded for the test's thread
        errors.append(err)
