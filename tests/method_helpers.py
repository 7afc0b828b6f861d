"""The shared pieces every `keras_eqssl.methods` test reuses (keras-hub's `run_*_test` style).

- `tiny_backbone(...)`: a ResNet-18-style backbone cut to two one-block stages at 1/16 width
  (16 channels, stride 2 with the cifar stem: an 8x8 grid at 16px), cheap to trace.
- `tiny_invariance(name, **kwargs)`: each of `INVARIANCES` with heads of a few units.
- `make_pair_model(...)`: a `PairModel` of the two, with or without `CrossAttentionReconstruction`.
- `random_params(specs, batch, seed)`, `random_pair_batch(...)`: a pair batch of random arrays
  whose `params` follow the `ParamSpec`s of a policy (the simclr policy's by default), as the
  augmentation pipeline records them: float32 continuous values in [low, high], 0/1 float32
  binary values, int32 categorical classes.
- `policy_pair_batch(...)`: real views and their recorded params: the scikit-image photos through
  the policy of `keras_eqssl.default_config` (simclr).
- `run_pair_model_test(model, batch, tmp_path)`: the `PairModel` contract: two `fit` steps
  with finite metrics named `model.term_names() + ["loss"]`, `loss` = the weighted sum of
  the terms, `.keras` saving + loading with identical `model(images)` and `evaluate`, and a
  `get_config` / `from_config` round trip.

Outputs are compared in inference mode (`training=False`), so BatchNorm uses its moving stats.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import tensorflow as tf

from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.augment.policies.factory import policy_from_config
from keras_eqssl.default_config import get_config
from keras_eqssl.methods import INVARIANCES, CrossAttentionReconstruction, Invariance, PairModel
from keras_eqssl.nn import backbone_from_name

EVAL_ATOL = 1e-8  # saved/loaded `evaluate` terms: float32 rounding of near-zero terms

TINY_SIZE = 16  # view side: an 8x8 token grid with `tiny_backbone()`
TINY_DIM = 16  # `tiny_backbone().feature_dim`

# Heads of a few units for each invariance loss (INVARIANCES keys).
TINY_HEADS = {
    "simclr": dict(projector_units=[16, 8]),
    "vicreg": dict(projector_units=[16, 16]),
    "barlow": dict(projector_units=[16, 8]),
    "simsiam": dict(projector_units=[16, 8], predictor_units=[4, 8]),
    "byol": dict(projector_units=[16, 8], predictor_units=[16, 8], base_momentum=0.9),
}


# --- building blocks ---------------------------------------------------------------------------
def tiny_backbone(stem: str = "cifar", width: float = 0.0625, blocks=(1, 1), **kwargs):
    """`backbone_from_name("resnet18", ...)` cut to `len(blocks)` stages; 16 channels with the defaults."""
    filters = [128 * 2**i for i in range(len(blocks))]
    return backbone_from_name(
        "resnet18", stem=stem, width=width, stackwise_num_blocks=list(blocks), stackwise_num_filters=filters, **kwargs
    )


def tiny_invariance(name: str, **kwargs) -> Invariance:
    """`INVARIANCES[name]` with `TINY_HEADS[name]`, overridden by `kwargs`."""
    return INVARIANCES[name](**{**TINY_HEADS[name], **kwargs})


def tiny_recon(**kwargs) -> CrossAttentionReconstruction:
    """A reconstruction objective with a 16-unit decoder (full-size target: one up-convolution)."""
    return CrossAttentionReconstruction(**{"decoder_dim": 16, "decoder_filters": 8, **kwargs})


def make_pair_model(
    invariance: str | Invariance = "vicreg",
    recon: bool = False,
    objectives=(),
    split=(8, 8),
    image_size: int = TINY_SIZE,
    backbone=None,
    **kwargs,
) -> PairModel:
    """A `PairModel` on `tiny_backbone()`; `recon=True` appends `tiny_recon()` to `objectives`."""
    inv = tiny_invariance(invariance) if isinstance(invariance, str) else invariance
    objs = [*objectives, *([tiny_recon()] if recon else [])]
    return PairModel(backbone or tiny_backbone(), inv, objectives=objs, split=split, image_size=image_size, **kwargs)


# --- batches -----------------------------------------------------------------------------------
@functools.cache
def simclr_policy(size: int = TINY_SIZE):
    """The default config's augmentation policy (simclr) at `size` px."""
    cfg = get_config().augment
    cfg.size = size
    return policy_from_config(cfg)


def simclr_specs(size: int = TINY_SIZE) -> dict[str, list[ParamSpec]]:
    """view -> the `ParamSpec`s the default simclr policy records."""
    return simclr_policy(size).param_specs()


def _random_values(spec: ParamSpec, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = (batch, *spec.shape)
    if spec.kind == "continuous":
        return rng.uniform(spec.low, spec.high, size=shape).astype("float32")
    if spec.kind == "binary":
        return rng.integers(0, 2, size=shape).astype("float32")
    return rng.integers(0, spec.num_classes, size=shape).astype("int32")


def random_params(specs: dict[str, list[ParamSpec]], batch: int, seed: int = 0) -> dict:
    """`{view: {key: (B, *shape)}}` drawn to match `specs` (the policy's recording format)."""
    rng = np.random.default_rng(seed)
    return {view: {s.key: _random_values(s, batch, rng) for s in view_specs} for view, view_specs in specs.items()}


def random_pair_batch(
    batch: int = 8,
    size: int = TINY_SIZE,
    seed: int = 0,
    specs: dict[str, list[ParamSpec]] | None = None,
    uint8: bool = False,
    **extra,
) -> dict:
    """`{"views": {"v1", "v2"}, "params": ...}` of random images (float in [0, 1] or uint8).

    `specs` defaults to the simclr policy's (pass `{}` for no params); `extra` adds top-level
    entries (e.g. `rel_rotation=...`).
    """
    rng = np.random.default_rng(seed)
    if uint8:
        views = rng.integers(0, 256, size=(2, batch, size, size, 3), dtype=np.uint8)
    else:
        views = rng.random((2, batch, size, size, 3)).astype("float32")
    out = {"views": {"v1": views[0], "v2": views[1]}}
    specs = simclr_specs(size) if specs is None else specs
    if specs:
        out["params"] = random_params(specs, batch, seed + 1)
    out.update(extra)
    return out


@functools.cache
def _small_photos(side: int = 64) -> np.ndarray:
    from keras_eqssl.data.photos import load_photos

    return tf.cast(tf.image.resize(load_photos(), (side, side), antialias=True), tf.uint8).numpy()


def policy_pair_batch(batch: int = 8, size: int = TINY_SIZE, seed: int = 0) -> dict:
    """Real views and params: `batch` scikit-image photos (cycled) through the default simclr policy."""
    photos = _small_photos()
    images = photos[np.arange(batch) % len(photos)]
    views, params = simclr_policy(size)(images, seed=seed)
    return {
        "views": {v: np.asarray(x) for v, x in views.items()},
        "params": tf.nest.map_structure(np.asarray, params),
    }


def as_tensors(batch: dict) -> dict:
    return tf.nest.map_structure(tf.convert_to_tensor, batch)


# --- comparisons -------------------------------------------------------------------------------
def assert_outputs_equal(a: dict, b: dict, atol: float = 0.0, what: str = "outputs"):
    assert sorted(a) == sorted(b), f"{what}: keys {sorted(a)} vs {sorted(b)}"
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.shape == y.shape, f"{what}[{key!r}]: shape {x.shape} vs {y.shape}"
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=f"{what}[{key!r}] differ")


def weighted_total(model: PairModel, metrics: dict) -> float:
    """invariance total + sum_k weight_k * objective_k total, from a dict of metric values."""
    total = 0.0
    for prefix, layer, _ in model._parts():
        total += float(metrics[prefix]) * (1.0 if isinstance(layer, Invariance) else layer.weight)
    return total


# --- the contract check ------------------------------------------------------------------------
def run_pair_model_test(
    model: PairModel,
    batch: dict,
    tmp_path,
    batch_size: int | None = None,
    optimizer=None,
    run_eagerly: bool = False,
    check_saving: bool = True,
) -> PairModel:
    """Checks `model` against the `PairModel` contract on `batch` (two batches of `batch_size`).

    1. `fit` for one epoch of exactly 2 steps: every metric finite, named
       `model.term_names() + ["loss"]`, the optimizer stepped twice and the backbone moved;
    2. `evaluate`: `loss` equals the weighted sum of the invariance and objective totals;
    3. `model(images)` returns `{"embedding", "invariant", "equivariant"}` of the split's widths;
    4. `.keras` saving + `load_model`: identical weights and `model(images)`, and the same
       `evaluate` results (to 1e-6 relative: the summed loss may round differently);
    5. `from_config(get_config())`: the same config and, with the same weights, the same outputs.

    Returns the loaded model (or `model` when `check_saving=False`).
    """
    n = len(batch["views"]["v1"])
    batch_size = batch_size or n // 2
    assert n == 2 * batch_size, f"the contract fits 2 steps: need 2 * batch_size examples, got {n}"
    images = batch["views"]["v1"]

    # 1. fit
    if not getattr(model, "compiled", False) or model.optimizer is None:
        model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), run_eagerly=run_eagerly)
    before = [np.array(w) for w in model.backbone.trainable_weights]
    history = model.fit(batch, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    expected_names = sorted([*model.term_names(), "loss"])
    assert len(set(expected_names)) == len(expected_names), f"duplicate metric names {expected_names}"
    assert sorted(history.history) == expected_names, f"metrics {sorted(history.history)} != {expected_names}"
    assert sorted(m.name for m in model.metrics) == expected_names
    for name, values in history.history.items():
        assert len(values) == 1 and np.isfinite(values[0]), f"metric {name!r}: {values}"
    assert int(model.optimizer.iterations) == 2, f"{int(model.optimizer.iterations)} optimizer steps, expected 2"
    after = [np.array(w) for w in model.backbone.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "fit did not change the backbone"

    # 2. evaluate: the loss is the weighted sum of the logged totals
    results = model.evaluate(batch, batch_size=batch_size, verbose=0, return_dict=True)
    assert sorted(results) == expected_names
    assert all(np.isfinite(v) for v in results.values()), results
    np.testing.assert_allclose(results["loss"], weighted_total(model, results), rtol=1e-5, atol=1e-5)

    # 3. the representation
    outputs = model(images, training=False)
    d_inv, d_equi = model.split or (model.backbone.feature_dim, model.backbone.feature_dim)
    assert sorted(outputs) == ["embedding", "equivariant", "invariant"]
    assert tuple(outputs["embedding"].shape) == (n, model.backbone.feature_dim)
    assert tuple(outputs["invariant"].shape) == (n, d_inv)
    assert tuple(outputs["equivariant"].shape) == (n, d_equi)

    # 4. saving
    loaded = model
    if check_saving:
        path = str(tmp_path / "m.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        assert type(loaded) is PairModel
        assert_outputs_equal(outputs, loaded(images, training=False), what="saved/loaded model(images)")
        loaded.run_eagerly = True  # `evaluate` was traced in 2.; tracing it again costs seconds for 2 steps
        reloaded = loaded.evaluate(batch, batch_size=batch_size, verbose=0, return_dict=True)
        # The same weights give the same terms up to float32 rounding: the eager evaluation orders its
        # sums differently from the traced one (seen: 1.5e-6 relative on a VICReg covariance of 1.4e-4,
        # depending on what ran before in the process), so 1e-6 relative with a 1e-8 absolute floor.
        for key, value in results.items():
            np.testing.assert_allclose(
                reloaded[key], value, rtol=1e-6, atol=EVAL_ATOL, err_msg=f"saved/loaded evaluate[{key!r}]"
            )
        assert len(loaded.weights) == len(model.weights)
        for a, b in zip(model.weights, loaded.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"loaded weight {a.path}")

    # 5. config round trip
    config = model.get_config()
    clone = PairModel.from_config(config)
    assert clone.get_config() == config, f"config changed in the round trip:\n{config}\nvs\n{clone.get_config()}"
    assert len(clone.weights) == len(model.weights)
    clone.set_weights(model.get_weights())
    assert_outputs_equal(outputs, clone(images, training=False), what="from_config model(images)")
    assert math.isclose(
        weighted_total(clone, _terms(clone, batch)), weighted_total(model, _terms(model, batch)), rel_tol=1e-6
    )
    return loaded


def _terms(model: PairModel, batch: dict) -> dict:
    _, terms = model.compute_losses(as_tensors(batch), training=False)
    return {k: float(v) for k, v in terms.items()}
