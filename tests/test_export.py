"""Export: the encoder SavedModel serves the trained model's features to a process without keras_eqssl.

One tiny PairModel (ResNet-18 at 1/16 width, VICReg + cross-attention reconstruction, split
(16, 16), 32 px) is trained two steps, so BatchNorm's moving statistics are not trivial, and
exported once for the whole module.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_eqssl.export import (
    METADATA_FILE,
    export_checkpoint,
    export_encoder,
    load_encoder,
    resolve_checkpoint,
)
from keras_eqssl.methods import CrossAttentionReconstruction, PairModel, VICReg
from keras_eqssl.nn import backbone_from_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = 32
SPLIT = (16, 16)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")

# Runs with TensorFlow and NumPy only: never imports keras_eqssl (nor Keras itself; TensorFlow
# 2.21 loads parts of Keras on its own import, which is not ours to avoid).
SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    export_dir, inputs, outputs = sys.argv[1:]
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    results = {}
    with np.load(inputs) as images:
        for name in images.files:
            for key, value in serve(images=tf.constant(images[name])).items():
                results[f"{name}/{key}"] = value.numpy()
    assert "keras_eqssl" not in sys.modules, sorted(m for m in sys.modules if m.startswith("keras_eqssl"))
    np.savez(outputs, **results)
    """
)


def tiny_model(**kwargs) -> PairModel:
    return PairModel(
        backbone_from_name("resnet18", stem="cifar", width=0.0625),
        VICReg(projector_units=[32, 32]),
        [CrossAttentionReconstruction(decoder_dim=32)],
        split=SPLIT,
        image_size=SIZE,
        **kwargs,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model trained 2 steps, its export directory, its `.keras` file)."""
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    views = np.random.default_rng(0).random((2, 16, SIZE, SIZE, 3)).astype("float32")
    model.fit({"views": {"v1": views[0], "v2": views[1]}}, batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 2
    root = tmp_path_factory.mktemp("export")
    model.save(root / "model.keras")
    return model, export_encoder(model, root / "encoder"), root / "model.keras"


def reference(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """The Keras model on the images the signature sees: [0, 1] floats resized (antialias) to SIZE."""
    x = images.astype("float32") / 255.0
    if x.shape[1:3] != (SIZE, SIZE):
        x = tf.image.resize(x, (SIZE, SIZE), method="bilinear", antialias=True).numpy()
    return {k: v.numpy() for k, v in model(x).items()}


def test_plain_tensorflow_process_serves_the_models_features(trained, tmp_path):
    model, export_dir, _ = trained
    rng = np.random.default_rng(1)
    images = {
        "square": rng.integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8),
        "resized": rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8),
    }
    np.savez(tmp_path / "in.npz", **images)
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), export_dir, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(tmp_path / "out.npz")
    dims = {"embedding": 32, "invariant": SPLIT[0], "equivariant": SPLIT[1]}
    for name, batch in images.items():
        expected = reference(model, batch)
        for key, dim in dims.items():
            got = served[f"{name}/{key}"]
            assert got.dtype == np.float32 and got.shape == (len(batch), dim), (name, key, got.shape)
            np.testing.assert_allclose(got, expected[key], atol=1e-5, err_msg=f"{name}/{key}")
        np.testing.assert_array_equal(served[f"{name}/invariant"], served[f"{name}/embedding"][:, : SPLIT[0]])
        np.testing.assert_array_equal(served[f"{name}/equivariant"], served[f"{name}/embedding"][:, SPLIT[0] :])
    assert np.abs(served["square/embedding"]).max() > 1e-3  # not a dead network


def test_savedmodel_holds_the_backbone_only(trained):
    model, export_dir, _ = trained
    saved = [
        shape
        for name, shape in tf.train.list_variables(os.path.join(export_dir, "variables", "variables"))
        if name.endswith("VARIABLE_VALUE")
    ]
    backbone = [list(w.shape) for w in model.backbone.weights]
    assert len(model.weights) > len(backbone)  # projector and decoder exist, and are left out
    assert sorted(saved) == sorted(backbone)
    assert sum(int(np.prod(s)) for s in saved) < sum(int(np.prod(w.shape)) for w in model.weights)


def test_load_encoder_batches_and_reports_metadata(trained):
    model, export_dir, _ = trained
    encoder = load_encoder(export_dir)
    images = np.random.default_rng(2).integers(0, 256, (7, 48, 48, 3), dtype=np.uint8)
    whole, batched = encoder(images), encoder(images, batch_size=3)
    assert list(whole) == ["embedding", "invariant", "equivariant"]
    for key, value in reference(model, images).items():
        np.testing.assert_array_equal(batched[key], whole[key])
        np.testing.assert_allclose(whole[key], value, atol=1e-5)
    assert encoder(images[:0])["invariant"].shape == (0, SPLIT[0])

    meta = encoder.metadata
    assert meta == json.loads((pathlib.Path(export_dir) / METADATA_FILE).read_text())
    assert meta["image_size"] == [SIZE, SIZE] and encoder.image_size == (SIZE, SIZE)
    assert meta["split"] == list(SPLIT) and meta["feature_dim"] == 32
    assert meta["invariant_dim"] == SPLIT[0] and meta["equivariant_dim"] == SPLIT[1]
    assert meta["mean"] == pytest.approx(model.mean) and meta["std"] == pytest.approx(model.std)
    assert meta["resize"] == "bilinear" and meta["keras_eqssl_version"]
    assert meta["model"]["backbone"]["class"] == "ResNetBackbone" and meta["model"]["invariance"] == "VICReg"
    assert "images: uint8 (None, None, None, 3)" in encoder.describe()


def test_encoder_rejects_bad_images(trained):
    encoder = load_encoder(trained[1])
    with pytest.raises(ValueError, match="uint8.*float32"):
        encoder(np.zeros((2, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(2, 32, 32\)"):
        encoder(np.zeros((2, SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        encoder(np.zeros((2, SIZE, SIZE, 3), np.uint8), batch_size=0)


def test_cli_exports_a_keras_checkpoint(trained, tmp_path):
    model, _, keras_file = trained
    out = tmp_path / "served" / "1"
    result = subprocess.run(
        [sys.executable, "-m", "keras_eqssl.cli.export", f"--checkpoint={keras_file}", f"--out={out}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serving_default" in result.stdout and "images: uint8 (None, None, None, 3)" in result.stdout
    assert f"equivariant: float32 (None, {SPLIT[1]})" in result.stdout and str(out) in result.stdout
    encoder = load_encoder(out)
    assert encoder.metadata["checkpoint"] == str(keras_file)
    images = np.random.default_rng(3).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    for key, value in reference(model, images).items():
        np.testing.assert_allclose(encoder(images)[key], value, atol=1e-5)


def test_cli_names_a_missing_checkpoint(tmp_path):
    missing = tmp_path / "no_such_run"
    result = subprocess.run(
        [sys.executable, "-m", "keras_eqssl.cli.export", f"--checkpoint={missing}", f"--out={tmp_path / 'out'}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(missing) in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def _save_module(path, signatures):
    module = tf.Module()
    module.fns = list(signatures.values())
    tf.saved_model.save(module, str(path), signatures=signatures)
    return str(path)


def test_load_encoder_says_what_signature_it_expected(tmp_path):
    float_fn = tf.function(lambda x: {"output_0": x * 2.0}, input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    other = _save_module(tmp_path / "other", {"serving_default": float_fn})
    with pytest.raises(ValueError, match=r"other.*'images'.*found x: float32 \(None, 4\).*output_0") as err:
        load_encoder(other)
    assert "Expected signature 'serving_default' taking 'images': uint8 (N, H, W, 3)" in str(err.value)

    no_default = _save_module(tmp_path / "no_default", {"predict": float_fn})
    with pytest.raises(ValueError, match=r"no_default has no 'serving_default' signature \(it has \['predict'\]\)"):
        load_encoder(no_default)

    spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    pooled = tf.function(lambda images: {"embedding": tf.reduce_mean(tf.cast(images, tf.float32), [1, 2])}, [spec])
    partial = _save_module(tmp_path / "partial", {"serving_default": pooled})
    with pytest.raises(ValueError, match=r"outputs lack \['invariant', 'equivariant'\]; found embedding"):
        load_encoder(partial)


def test_load_encoder_names_a_path_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        load_encoder(tmp_path / "missing")
    (tmp_path / "model.keras").write_bytes(b"PK")
    with pytest.raises(ValueError, match="model.keras is not a SavedModel.*keras-eqssl-export"):
        load_encoder(tmp_path / "model.keras")
    with pytest.raises(ValueError, match=f"{tmp_path} is not a SavedModel directory"):
        load_encoder(tmp_path)


def test_resolve_checkpoint_finds_the_runs_model(tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "ckpt-00000004.keras").write_bytes(b"")
    (ckpts / "checkpoint.json").write_text(json.dumps({"step": 4, "file": "ckpt-00000004.keras"}))
    assert resolve_checkpoint(ckpts) == str(ckpts / "ckpt-00000004.keras")
    assert resolve_checkpoint(tmp_path / "run") == str(ckpts / "ckpt-00000004.keras")  # no model.keras yet
    (tmp_path / "run" / "model.keras").write_bytes(b"")
    assert resolve_checkpoint(tmp_path / "run") == str(tmp_path / "run" / "model.keras")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is a directory without a model"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="weights.h5 is not a .keras"):
        export_checkpoint(tmp_path / "weights.h5", tmp_path / "out")
    with pytest.raises(ValueError, match="could not load .*model.keras"):
        export_checkpoint(tmp_path / "run" / "model.keras", tmp_path / "out")


def test_export_replaces_an_export_but_not_other_files(trained, tmp_path):
    model = trained[0]
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "a.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"{keep} is a non-empty directory that holds no earlier export"):
        export_encoder(model, keep)
    assert (keep / "a.txt").read_text() == "mine"

    out = tmp_path / "strict"
    export_encoder(model, out, resize="area")
    export_encoder(model, out, resize=None)  # replaces the first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "strict"]  # no temporary leftovers
    encoder = load_encoder(out)
    assert encoder.metadata["resize"] is None
    images = np.random.default_rng(4).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_allclose(encoder(images)["embedding"], reference(model, images)["embedding"], atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="resize=None takes \\(32, 32\\) images only"):
        encoder(np.zeros((1, 40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="resize must be one of"):
        export_encoder(model, tmp_path / "x", resize="linear")


def test_mixed_precision_model_exports_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = PairModel(backbone_from_name("resnet18", stem="cifar", width=0.0625), VICReg([16, 16]), image_size=16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.compute_dtype == "float16"
    encoder = load_encoder(export_encoder(model, tmp_path / "mixed"))
    images = np.random.default_rng(5).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    got, expected = encoder(images), model(images)
    assert encoder.metadata["split"] is None and encoder.metadata["model"]["dtype_policy"] == "mixed_float16"
    for key in ("embedding", "invariant", "equivariant"):
        assert got[key].dtype == np.float32 and got[key].shape == (3, 32)
        np.testing.assert_allclose(got[key], expected[key].numpy().astype("float32"), atol=1e-3, rtol=1e-3)
