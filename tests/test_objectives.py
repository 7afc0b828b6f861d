"""Every registered objective meets the `run_objective_test` contract (tests/objective_helpers.py).

Each case is a pair of module-level functions: the objective with small heads, and a batch with
what it reads. STL, E-SSL and SIE are added beside the built-in reconstruction and parameter
prediction; every objective in `OBJECTIVES` must have a case here. The online probe's own tests
(its accuracy, its config section filled from the data) close the file.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from method_helpers import TINY_SIZE, make_pair_model, random_pair_batch
from objective_helpers import check_two_replicas, run_objective_test

from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.methods import (
    ESSL,
    OBJECTIVES,
    SIE,
    STL,
    CrossAttentionReconstruction,
    OnlineLinearProbe,
    PairModel,
    ParameterPrediction,
)


def _quaternions(n: int, rng) -> np.ndarray:
    q = rng.normal(size=(n, 4)).astype("float32")
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def pair_batch(batch: int, size: int) -> dict:
    """Random pair views and a relative rotation (what every case below may read)."""
    rng = np.random.default_rng(batch)
    return random_pair_batch(batch, size, specs={}, rel_rotation=_quaternions(batch, rng))


def rotated_batch(batch: int, size: int) -> dict:
    """`pair_batch` plus E-SSL's views rot0..rot3: one random crop of half the side, k quarter turns."""
    out = pair_batch(batch, size)
    crop = np.random.default_rng(batch + 1).random((batch, size // 2, size // 2, 3)).astype("float32")
    for k in range(4):
        out["views"][f"rot{k}"] = np.ascontiguousarray(np.rot90(crop, k, axes=(1, 2)))
    return out


def make_essl(synchronized: bool):
    return ESSL(hidden_units=[16, 16], synchronized=synchronized)


def make_sie(synchronized: bool):
    return SIE(projector_units=[16, 8], synchronized=synchronized)


def make_recon(synchronized: bool):
    return CrossAttentionReconstruction(target_size=16, decoder_dim=16, decoder_filters=8, synchronized=synchronized)


def make_params(synchronized: bool):
    return ParameterPrediction(targets=["rel_rotation"], hidden_units=[16], synchronized=synchronized)


def labelled_batch(batch: int, size: int) -> dict:
    """`pair_batch` plus integer class labels in [0, 3)."""
    return {**pair_batch(batch, size), "label": np.arange(batch, dtype=np.int64) % 3}


def make_online_probe(synchronized: bool):
    return OnlineLinearProbe(num_classes=3)


def photos_config():
    """The default config on the bundled photos (16 classes): a labelled source the probe's section builds from."""
    config = get_config()
    config.data.source = "skimage_photos"
    return config


def make_stl(synchronized: bool):
    return STL(
        projector_units=[16, 8], transform_units=[16, 8], transform_projector_units=[8, 8], synchronized=synchronized
    )


CASES = {
    "essl": (make_essl, rotated_batch),
    "sie": (make_sie, pair_batch),
    "stl": (make_stl, pair_batch),
    "recon": (make_recon, pair_batch),
    "params": (make_params, pair_batch),
    "online_probe": (make_online_probe, labelled_batch),
}
# Options of run_objective_test beyond the defaults: the online probe's section takes its class
# count from a labelled source, and its gradient stops at the features.
CASE_OPTIONS = {"online_probe": dict(config=photos_config(), reaches_backbone=False)}


def test_every_registered_objective_has_a_case():
    builtin = {name for name, cls in OBJECTIVES.items() if cls.__module__.startswith("keras_eqssl.")}
    assert builtin <= set(CASES), f"objectives without a run_objective_test case: {sorted(builtin - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_contract(name, tmp_path):
    make_objective, make_batch = CASES[name]
    run_objective_test(make_objective, make_batch, tmp_path, replicas=False, **CASE_OPTIONS.get(name, {}))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_two_replicas_equal_one_device(name):
    """STL's pairs stay on their replica; SIE's, E-SSL's statistics are global (a fresh interpreter each)."""
    make_objective, make_batch = CASES[name]
    check_two_replicas(make_objective, make_batch)


# --- ParameterPrediction: AugSelf's and CIPER/AASSL's options --------------------------------------
AUGSELF_OPTIONS = dict(
    mode="difference",
    heads="per_target",
    symmetric=True,
    crop_target="center",
    target_scales={"color": [0.8, 0.8, 0.8, 0.2]},
    standardize=False,
    output_activation="tanh",
)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def make_augself(synchronized: bool):
    return ParameterPrediction(
        targets=["crop", "color"], hidden_units=[16], features="all", synchronized=synchronized, **AUGSELF_OPTIONS
    )


def simclr_batch(batch: int, size: int) -> dict:
    """Random views with the simclr policy's parameters (crop, flip, color, ...)."""
    return random_pair_batch(batch, size, seed=batch)


def _params_context(specs, d: int = 6):
    from keras_eqssl.methods.context import ModelContext

    return ModelContext((16, 16), (4, 4), True, 2 * d, d, d, specs)


def _augself_specs():
    from keras_eqssl.augment.base import ParamSpec

    view = [
        ParamSpec("crop", (4,), "continuous", 0.0, 1.0),
        ParamSpec("flip", (1,), "binary", 0.0, 1.0),
        ParamSpec("color", (4,), "continuous", -0.1, 1.4),
    ]
    return {"v1": view, "v2": view}


def _augself_params(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def view():
        return {
            "crop": rng.uniform(0, 0.5, (batch, 4)).astype("float32"),
            "flip": rng.integers(0, 2, (batch, 1)).astype("float32"),
            "color": rng.uniform(0.6, 1.4, (batch, 4)).astype("float32"),
        }

    return {"v1": view(), "v2": view()}


def _numpy_augself_targets(a: dict, b: dict) -> dict:
    """AugSelf's `extract_diff` for the order (a, b): centres mirrored by a's flip; colour over the ranges' widths."""
    ca = a["crop"][:, :2] + a["crop"][:, 2:] / 2
    cb = b["crop"][:, :2] + b["crop"][:, 2:] / 2
    flipped = a["flip"][:, 0] > 0.5
    ca[flipped, 1], cb[flipped, 1] = 1 - ca[flipped, 1], 1 - cb[flipped, 1]
    crop = np.concatenate([ca - cb, a["crop"][:, 2:] - b["crop"][:, 2:]], 1)
    color = (a["color"] - b["color"]) / np.array([0.8, 0.8, 0.8, 0.2], np.float32)
    return {"crop": crop, "color": color}


def test_parameter_prediction_augself_options_match_numpy():
    layer = ParameterPrediction(targets=["crop", "color"], hidden_units=[8], features="all", **AUGSELF_OPTIONS)
    layer.setup(_params_context(_augself_specs()))
    assert layer.head is None and [h.name for h in layer.target_heads] == ["head_crop", "head_color"]
    params = _augself_params(6)
    f1, f2 = _rand(6, 12, seed=1), _rand(6, 12, seed=2)
    out = layer({"features": {"v1": f1, "v2": f2}, "batch": {"params": params}}, training=False)
    x = np.concatenate([np.concatenate([f1, f2], 1), np.concatenate([f2, f1], 1)], 0)  # both orders stacked
    forward, reverse = (
        _numpy_augself_targets(params["v1"], params["v2"]),
        _numpy_augself_targets(params["v2"], params["v1"]),
    )
    expected = {}
    for key, head in zip(("crop", "color"), layer.target_heads):
        y = np.tanh(np.asarray(head(x, training=False)))
        expected[key] = np.mean((y - np.concatenate([forward[key], reverse[key]])) ** 2)
    expected["total"] = expected["crop"] + expected["color"]
    for key, value in expected.items():
        np.testing.assert_allclose(float(out[key]), value, rtol=1e-5, err_msg=key)
    # the flip correction follows the first view only, so a reversed pair is not always the negation
    assert not np.allclose(forward["crop"], -reverse["crop"])


def test_parameter_prediction_mean_reduction_weights_keys_by_size():
    from keras_eqssl.methods.context import RELATIVE_SPECS

    targets = {"rel_rotation": _rand(8, 4, seed=3), "rel_color": _rand(8, 2, seed=4)}
    f1, f2 = _rand(8, 6, seed=5), _rand(8, 6, seed=6)
    pair = {"equivariant": {"v1": f1, "v2": f2}, "batch": targets}
    outs = {}
    for reduction in ("sum", "mean"):
        layer = ParameterPrediction(list(targets), hidden_units=[8], reduction=reduction)
        layer.setup(_params_context(None))
        outs[reduction] = {k: float(v) for k, v in layer(pair, training=False).items()}
        if reduction == "mean":
            # one MSE over all six standardised components (AASSL's F.mse_loss on the action vector)
            y = np.asarray(layer.head(np.concatenate([f1, f2], 1), training=False))
            t = np.concatenate([targets[k] for k in targets], 1)
            t = (t - t.mean(0)) / np.sqrt(t.var(0) + 1e-5)
            np.testing.assert_allclose(outs["mean"]["total"], np.mean((y - t) ** 2), rtol=1e-5)
    assert set(RELATIVE_SPECS) == set(targets)
    rot, col = outs["mean"]["rel_rotation"], outs["mean"]["rel_color"]
    np.testing.assert_allclose(outs["mean"]["total"], (4 * rot + 2 * col) / 6, rtol=1e-5)
    np.testing.assert_allclose(outs["sum"]["total"], outs["sum"]["rel_rotation"] + outs["sum"]["rel_color"], rtol=1e-5)


def test_parameter_prediction_symmetric_pair_mode_swaps_views():
    layer = ParameterPrediction(["crop"], mode="pair", hidden_units=[8], symmetric=True)
    layer.setup(_params_context(_augself_specs()))
    params = _augself_params(4)
    reverse = layer._targets({"params": params}, order=("v2", "v1"))
    np.testing.assert_array_equal(reverse["v1_crop"], params["v2"]["crop"])
    np.testing.assert_array_equal(reverse["v2_crop"], params["v1"]["crop"])


@pytest.mark.parametrize(
    "kwargs, context_specs, match",
    [
        (dict(heads="separate"), "augself", "heads must be one of"),
        (dict(reduction="avg"), "augself", "reduction must be one of"),
        (dict(output_activation="sigmoid"), "augself", "output_activation must be one of"),
        (dict(crop_target="center", mode="pair"), "augself", "use mode='difference'"),
        (dict(target_scales={"color": [0.8, -1.0]}), "augself", "must be positive"),
        (dict(targets=["rel_rotation"], symmetric=True), None, "symmetric=True reverses the pair"),
        (dict(target_scales={"flip": [1.0]}), "augself", "not a predicted continuous target"),
        (dict(target_scales={"color": [1.0, 2.0]}), "augself", "give 1 or 4"),
        (dict(crop_target="center", targets=["crop"]), "no_flip", "needs the \\(y0, x0, h, w\\) crop box"),
    ],
)
def test_parameter_prediction_option_errors(kwargs, context_specs, match):
    args = dict(targets=["crop", "color", "flip"], mode="difference", hidden_units=[8])
    args.update(kwargs)
    specs = _augself_specs() if context_specs else None
    if context_specs == "no_flip":
        specs = {v: [s for s in view if s.key != "flip"] for v, view in specs.items()}
    with pytest.raises(ValueError, match=match):
        ParameterPrediction(**args).setup(_params_context(specs))


def test_parameter_prediction_target_scales_from_the_config():
    from train_helpers import load_config

    from keras_eqssl.methods.objectives.parameter_prediction import parse_target_scales

    config = load_config("augself")
    built = ParameterPrediction.from_config_section(config.model.params, config)
    np.testing.assert_allclose(built.target_scales["color"], [0.8, 0.8, 0.8, 0.2], rtol=1e-6)
    config.augment.jitter.hue = 0.2
    np.testing.assert_allclose(parse_target_scales("jitter", config)["color"][3], 0.4, rtol=1e-6)
    assert parse_target_scales("color=1/2/3/4, crop=0.5") == {"color": [1.0, 2.0, 3.0, 4.0], "crop": [0.5]}
    assert parse_target_scales("") is None
    with pytest.raises(ValueError, match="key=a/b"):
        parse_target_scales("color")
    restored = ParameterPrediction.from_config(built.get_config())
    for key in ("heads", "symmetric", "crop_target", "target_scales", "output_activation", "reduction"):
        assert getattr(restored, key) == getattr(built, key), key


def test_augself_objective_contract(tmp_path):
    from method_helpers import simclr_specs

    run_objective_test(make_augself, simclr_batch, tmp_path, split=None, replicas=False, param_specs=simclr_specs())


# --- the online probe ---------------------------------------------------------------------------
def labelled_batches(num_batches: int, batch: int = 16, classes: int = 4, seed: int = 0) -> tf.data.Dataset:
    """Pairs whose class sets the image's colour (easy to classify), labels int32."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 1, (classes, 3))
    n = num_batches * batch
    labels = rng.integers(0, classes, n).astype(np.int32)
    views = [
        np.clip(colours[labels][:, None, None] + 0.1 * rng.normal(size=(n, TINY_SIZE, TINY_SIZE, 3)), 0, 1)
        for _ in range(2)
    ]
    data = {"views": {"v1": views[0].astype("float32"), "v2": views[1].astype("float32")}, "label": labels}
    return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)


def test_online_linear_probe_learns_and_leaves_the_encoder_alone():
    probe = OnlineLinearProbe(num_classes=4)
    model = make_pair_model(objectives=[probe])
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(labelled_batches(8), epochs=4, verbose=0).history
    assert "online_probe" in history and "online_probe_top1" in history
    assert history["online_probe_top1"][-1] > 0.6, history["online_probe_top1"]
    assert history["online_probe"][-1] < history["online_probe"][0]

    batch = next(iter(labelled_batches(1)))
    with tf.GradientTape() as tape:
        terms = probe(model.pair_outputs(batch, training=True), training=True)
    grads = tape.gradient(terms["total"], model.backbone.trainable_variables + probe.trainable_variables)
    n_backbone = len(model.backbone.trainable_variables)
    assert all(g is None for g in grads[:n_backbone])  # stop-gradient: nothing reaches the encoder
    assert all(g is not None for g in grads[n_backbone:])

    clone = PairModel.from_config(model.get_config())
    assert isinstance(clone.objectives[0], OnlineLinearProbe) and clone.objectives[0].num_classes == 4

    no_labels = {"views": batch["views"]}
    with pytest.raises(ValueError, match="the batch has no 'label'"):
        probe(model.pair_outputs(no_labels), training=False)
    with pytest.raises(ValueError, match="features must be one of"):
        OnlineLinearProbe(4, features="tokens")


def _online_probe_config(source: str = "skimage_photos"):
    """A tiny VICReg run on `source` with the online probe on (the recon branch off)."""
    config = get_config()
    config.data.source, config.data.photos = source, "test"  # the 4 held-out photos: 4 classes
    config.data.image_size, config.data.num_images, config.data.batch_size = 24, 32, 8
    config.augment.size = 16
    config.model.width, config.model.split = 0.0625, (16, 16)
    config.model.invariance.vicreg.projector_units = "32-32"
    config.model.recon.enabled = False
    config.model.online_probe.enabled = True
    config.train.steps = 4
    return config


def _train_four_steps(config) -> tuple:
    from keras_eqssl.data.train_batches import train_batches
    from keras_eqssl.methods.factory import model_from_config, optimizer_from_config

    keras.utils.set_random_seed(config.seed)
    dataset, specs = train_batches(config, progress=False)
    model = model_from_config(config, specs)
    model.compile(optimizer=optimizer_from_config(config))
    model.jit_compile = config.train.jit_compile  # as keras-eqssl-train: no XLA
    return model, model.fit(dataset, epochs=1, steps_per_epoch=config.train.steps, verbose=0).history


@pytest.mark.slow  # a 4-step training from a config (12 s), like the registry tests' trainings; CI runs it
def test_the_online_probe_trains_from_a_config_on_a_labelled_source():
    config = _online_probe_config()
    validate(config)
    model, history = _train_four_steps(config)
    (probe,) = model.objectives
    assert isinstance(probe, OnlineLinearProbe) and probe.num_classes == 4  # from the source's labels
    assert 0.0 <= history["online_probe_top1"][-1] <= 1.0 and np.isfinite(history["online_probe"][-1])


@pytest.mark.slow  # two short trainings
def test_the_online_probe_leaves_every_other_loss_as_it_was():
    config = _online_probe_config()
    _, history = _train_four_steps(config)
    config.model.online_probe.enabled = False
    _, without = _train_four_steps(config)
    others = sorted(k for k in without if k != "loss")  # loss: the total, which adds the probe's
    assert others and all(history[k] == without[k] for k in others), (history, without)


def test_the_online_probe_on_a_source_without_class_labels_is_a_config_error(tmp_path):
    folder = tmp_path / "photos" / "only_class"
    folder.mkdir(parents=True)
    for i in range(2):
        (folder / f"{i}.png").write_bytes(tf.io.encode_png(tf.fill((8, 8, 3), tf.constant(i * 90, tf.uint8))).numpy())
    config = _online_probe_config("image_folder")
    config.data.root = str(tmp_path / "photos")
    from keras_eqssl.methods.factory import model_from_config

    with pytest.raises(ConfigError) as err:
        model_from_config(config)
    message = str(err.value)
    assert "\n" not in message and message.startswith("config.model.online_probe.enabled=True: ")
    assert "config.data.source='image_folder' has labels of 1 class" in message
