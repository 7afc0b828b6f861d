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
    signatures = tf.saved_model.load(export_dir).signatures
    results = {}
    with np.load(inputs) as images:
        for name in images.files:
            pixels = images[name]  # uint8
            served = {
                "uint8": signatures["serving_uint8"](images=tf.constant(pixels)),
                "float": signatures["serving_default"](images=tf.constant(pixels / np.float32(255))),
            }
            for signature, out in served.items():
                for key, value in out.items():
                    results[f"{signature}/{name}/{key}"] = value.numpy()
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
        for signature in ("uint8", "float"):
            got = {key: served[f"{signature}/{name}/{key}"] for key in dims}
            for key, dim in dims.items():
                assert got[key].dtype == np.float32 and got[key].shape == (len(batch), dim), (name, key, got[key].shape)
                np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=f"{signature}/{name}/{key}")
            np.testing.assert_array_equal(got["invariant"], got["embedding"][:, : SPLIT[0]])
            np.testing.assert_array_equal(got["equivariant"], got["embedding"][:, SPLIT[0] :])
    assert np.abs(served["uint8/square/embedding"]).max() > 1e-3  # not a dead network


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
    assert meta["format"] == "keras_eqssl.encoder/2"
    assert meta["signature"]["serving_default"]["inputs"]["images"] == {
        "dtype": "float32", "shape": [None, None, None, 3], "range": [0.0, 1.0]
    }  # fmt: skip
    assert meta["signature"]["serving_uint8"]["inputs"]["images"]["range"] == [0, 255]
    assert meta["signature"]["serving_uint8"]["outputs"]["invariant"] == {"dtype": "float32", "shape": [None, SPLIT[0]]}
    described = encoder.describe()
    assert "serving_default:\n  input  images: float32 (None, None, None, 3) in [0, 1]" in described
    assert "serving_uint8:\n  input  images: uint8 (None, None, None, 3) in [0, 255]" in described


def test_encoder_rejects_bad_images(trained):
    encoder = load_encoder(trained[1])
    with pytest.raises(ValueError, match=r"\(2, 32, 32\)"):
        encoder(np.zeros((2, SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\).*received shape \(2, 32, 32, 4\)"):
        encoder(np.zeros((2, SIZE, SIZE, 4), np.uint8))
    with pytest.raises(ValueError, match=r"H, W >= 1; received shape \(2, 0, 32, 3\)"):
        encoder(np.zeros((2, 0, SIZE, 3), np.float32))
    for dtype in (np.int64, np.bool_, np.uint16):
        with pytest.raises(
            ValueError,
            match=rf"uint8 images in \[0, 255\] or float images in \[0, 1\]; received dtype {np.dtype(dtype)}",
        ):
            encoder(np.zeros((2, SIZE, SIZE, 3), dtype))
    pixels = np.full((2, SIZE, SIZE, 3), 200, np.uint8)
    with pytest.raises(ValueError, match=r"\[0, 1\]; received min 200, max 200\. uint8 pixels: pass them as np.uint8"):
        encoder(pixels.astype(np.float32))
    with pytest.raises(ValueError, match=r"received min -0.5, max 0.5\."):
        encoder(np.linspace(-0.5, 0.5, 2 * SIZE * SIZE * 3).reshape(2, SIZE, SIZE, 3))
    nan = np.full((2, SIZE, SIZE, 3), 0.5, np.float32)
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"received min 0.5, max 0.5 and 1 NaN values"):
        encoder(nan)
    with pytest.raises(ValueError, match="batch_size"):
        encoder(np.zeros((2, SIZE, SIZE, 3), np.uint8), batch_size=0)


def test_encoder_takes_uint8_and_unit_floats_alike(trained):
    model, export_dir, _ = trained
    encoder = load_encoder(export_dir)
    assert sorted(encoder.signatures) == ["serving_default", "serving_uint8"]
    pixels = np.random.default_rng(6).integers(0, 256, (5, 40, 24, 3), dtype=np.uint8)
    from_uint8 = encoder(pixels, batch_size=2)
    for floats in (pixels / np.float32(255), pixels / 255.0, (pixels / np.float32(255)).astype(np.float16)):
        got = encoder(floats, batch_size=3)
        atol = 1e-2 if floats.dtype == np.float16 else 1e-5  # float16 keeps ~3 digits of x / 255
        for key, value in from_uint8.items():
            np.testing.assert_allclose(got[key], value, atol=atol, err_msg=f"{floats.dtype} {key}")
    for key, value in reference(model, pixels).items():
        np.testing.assert_allclose(from_uint8[key], value, atol=1e-5)
    assert encoder(np.zeros((0, 8, 8, 3), np.float32))["embedding"].shape == (0, 32)


# --- the raw signatures, as a serving process calls them ------------------------------------------
@pytest.fixture(scope="module")
def signatures(trained):
    return tf.saved_model.load(trained[1]).signatures


def test_float_serving_default_equals_serving_uint8(signatures):
    pixels = np.random.default_rng(7).integers(0, 256, (4, 48, 40, 3), dtype=np.uint8)
    floats = pixels / np.float32(255)  # a NumPy array: the path TensorFlow used to cast to uint8 silently
    assert floats.dtype == np.float32 and floats.max() <= 1.0
    from_float = signatures["serving_default"](images=floats)
    from_uint8 = signatures["serving_uint8"](images=tf.constant(pixels))
    for key in ("embedding", "invariant", "equivariant"):
        np.testing.assert_allclose(from_float[key].numpy(), from_uint8[key].numpy(), atol=1e-4, err_msg=key)
    assert np.abs(from_float["embedding"].numpy()).max() > 1e-3


@pytest.mark.parametrize(
    "images, received",
    [
        (np.full((2, 8, 8, 3), 300.0, np.float32), "min 300, max 300"),
        (np.full((2, 8, 8, 3), -5.0, np.float32), "min -5, max -5"),
        (np.where(np.arange(2 * 8 * 8 * 3).reshape(2, 8, 8, 3) == 7, np.nan, 0.5).astype(np.float32), "1 NaN"),
        (np.random.default_rng(8).integers(2, 256, (2, 8, 8, 3), dtype=np.uint8), "min 2, max 255"),  # uint8 NumPy
        ([[[[0.5, 0.5, 1.5]]]], "min 0.5, max 1.5"),  # a Python list
    ],
    ids=["300", "-5", "nan", "uint8_numpy", "list"],
)
def test_serving_default_refuses_values_outside_0_1(signatures, images, received):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"float32 images in \[0, 1\]; received") as err:
        signatures["serving_default"](images=images)
    message = str(err.value)
    assert received in message and "uint8 pixels: divide by 255, or use the serving_uint8 signature" in message


def test_signatures_take_an_empty_batch_and_name_bad_shapes(signatures):
    dims = {"embedding": 32, "invariant": SPLIT[0], "equivariant": SPLIT[1]}
    for name, dtype in (("serving_default", tf.float32), ("serving_uint8", tf.uint8)):
        for shape in ((0, SIZE, SIZE, 3), (0, 7, 90, 3)):
            out = signatures[name](images=tf.zeros(shape, dtype))
            assert {k: (v.dtype, tuple(v.shape)) for k, v in out.items()} == {
                k: (tf.float32, (0, d)) for k, d in dims.items()
            }, (name, shape)
        for shape in ((2, 0, SIZE, 3), (2, SIZE, 0, 3)):
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"H, W >= 1; received shape \[2 \d+ \d+ 3\]"):
                signatures[name](images=tf.zeros(shape, dtype))
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"must be \(N, H, W, 3\).*received shape \[2 32 32 4\]"
        ):
            signatures[name](images=tf.zeros((2, SIZE, SIZE, 4), dtype))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"4-dimensional\[32,32,3\]"):  # TF's own message
            signatures[name](images=tf.zeros((SIZE, SIZE, 3), dtype))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a uint8 tensor"):
        signatures["serving_default"](images=tf.zeros((1, 8, 8, 3), tf.uint8))


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
    assert "Expected signature 'serving_default' taking 'images': float32 (N, H, W, 3) in [0, 1]" in str(err.value)

    no_default = _save_module(tmp_path / "no_default", {"predict": float_fn})
    with pytest.raises(ValueError, match=r"no_default has no 'serving_default' signature \(it has \['predict'\]\)"):
        load_encoder(no_default)

    spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    pooled = tf.function(lambda images: {"embedding": tf.reduce_mean(tf.cast(images, tf.float32), [1, 2])}, [spec])
    partial = _save_module(tmp_path / "partial", {"serving_default": pooled})
    with pytest.raises(ValueError, match=r"outputs lack \['invariant', 'equivariant'\]; found embedding"):
        load_encoder(partial)

    int_spec = tf.TensorSpec([None, None, None, 3], tf.int32, name="images")
    ints = _save_module(tmp_path / "ints", {"serving_default": tf.function(_format1_serve.python_function, [int_spec])})
    with pytest.raises(ValueError, match=r"'images' must be float32 or uint8 of rank 4 with 3 channels; found int32"):
        load_encoder(ints)
    float_spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
    floats = tf.function(_format1_serve.python_function, [float_spec])
    bad_uint8 = _save_module(tmp_path / "bad_uint8", {"serving_default": floats, "serving_uint8": floats})
    with pytest.raises(ValueError, match=r"its 'serving_uint8' signature input 'images' must be uint8 .*found float32"):
        load_encoder(bad_uint8)


@tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
def _format1_serve(images):
    """A format-1 encoder: uint8 `serving_default` -> channel means (invariant) and maxima (equivariant) of x / 255."""
    x = tf.cast(images, tf.float32) / 255.0
    parts = {"invariant": tf.reduce_mean(x, axis=[1, 2]), "equivariant": tf.reduce_max(x, axis=[1, 2])}
    return {"embedding": tf.concat([parts["invariant"], parts["equivariant"]], 1), **parts}


def test_a_format_1_export_still_loads_and_serves(tmp_path):
    path = _save_module(tmp_path / "v1", {"serving_default": _format1_serve})
    encoder = load_encoder(path)
    assert list(encoder.signatures) == ["serving_default"] and encoder.output_dims["embedding"] == 6
    assert "serving_uint8" not in encoder.describe() and "images: uint8 (None, None, None, 3) in [0, 255]" in (
        encoder.describe()
    )
    pixels = np.random.default_rng(9).integers(0, 256, (5, 9, 7, 3), dtype=np.uint8)
    x = pixels / np.float32(255)
    expected = {"invariant": x.mean(axis=(1, 2)), "equivariant": x.max(axis=(1, 2))}
    for images in (pixels, x, x.astype(np.float64)):  # floats are rounded to uint8 for a uint8 serving_default
        got = encoder(images, batch_size=2)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=f"{images.dtype} {key}")
    with pytest.raises(ValueError, match=r"received min 0, max 255"):
        encoder(pixels.astype(np.float32))
    probe = load_encoder(path, batch_size=3)  # the probes' encode: uint8 through the format-1 serving_default
    assert probe.cache_key.endswith(":serving_default")
    np.testing.assert_allclose(probe(pixels)["equivariant"], expected["equivariant"], rtol=1e-6)


def test_probes_read_a_format_2_export_through_either_signature(trained):
    model, export_dir, _ = trained
    pixels = np.random.default_rng(10).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    encode = load_encoder(export_dir, batch_size=4)
    assert encode.cache_key.endswith(":serving_uint8")
    expected = reference(model, pixels)
    for name, images in (("serving_uint8", pixels), ("serving_default", pixels / np.float32(255))):
        got = encode(images)
        for key in ("embedding", "invariant", "equivariant"):
            np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=f"{name} {key}")


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
    with pytest.raises(ValueError, match="model.keras is damaged.*no intact checkpoint is beside it"):
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


# --- tools/serve_soak.py --------------------------------------------------------------------------
def _soak_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("serve_soak", ROOT / "tools" / "serve_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serve_soak_plans_the_extremes_and_judges_the_curve():
    soak = _soak_tool()
    plan = soak.plan_requests(200, 0, max_side=1024, max_batch=64, max_pixels=64 * 512 * 512)
    assert plan[:3] == [(1, 1, 1), (1, 1024, 1024), (64, 512, 512)] and plan[-2:] == [(1, 1, 1), (1, 1024, 1024)]
    assert all(1 <= n <= 64 and 1 <= h <= 1024 and 1 <= w <= 1024 and n * h * w <= 64 * 512 * 512 for n, h, w in plan)
    assert (
        plan
        == soak.plan_requests(200, 0, 1024, 64, 64 * 512 * 512)
        != soak.plan_requests(200, 1, 1024, 64, 64 * 512 * 512)
    )
    flat = soak.memory_verdict([500.0] * 10 + [510.0, 505.0] * 45, warmup=10, tolerance=0.05)
    assert flat["flat"] and flat["growth_mb"] == 10.0 and abs(flat["slope_mb_per_100"]) < 1.0
    leak = soak.memory_verdict([500.0 + i for i in range(100)], warmup=10, tolerance=0.05)
    assert not leak["flat"] and leak["slope_mb_per_100"] == pytest.approx(100.0)


def test_serve_soak_runs_clean_on_the_export(trained, tmp_path, capsys):
    out = tmp_path / "soak.json"
    args = [f"--export={trained[1]}", "--requests=20", "--max_side=64", "--max_batch=4", f"--json={out}"]
    status = _soak_tool().main([*args, "--tolerance=10"])  # 20 requests are too few to judge memory
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert status == 0 and figures["num_errors"] == 0, figures["errors"]
    assert figures["signatures"] == {"serving_default": 10, "serving_uint8": 10}
    assert figures["covered"]["height"] == [1, 64] and figures["covered"]["smallest_1x1"]
    assert len(figures["rss_mb"]) == 20 and "errors 0" in printed and "MB per 100 requests" in printed
