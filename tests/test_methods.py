"""PairModel, the invariance losses and the equivariance objectives: the contract through the shared
`run_pair_model_test`, hand computations in NumPy, construction errors, callbacks, a learning signal."""

import glob
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from method_helpers import (
    TINY_DIM,
    TINY_SIZE,
    as_tensors,
    assert_outputs_equal,
    make_pair_model,
    policy_pair_batch,
    random_pair_batch,
    run_pair_model_test,
    simclr_specs,
    tiny_backbone,
    tiny_invariance,
    tiny_recon,
)
from nn_helpers import numpy_mlp

from keras_eqssl import losses
from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.losses import byol_momentum
from keras_eqssl.methods import (
    BYOL,
    INVARIANCES,
    RELATIVE_SPECS,
    BarlowTwins,
    CrossAttentionReconstruction,
    ModelContext,
    PairModel,
    ParameterPrediction,
    SimCLR,
    SimSiam,
    VICReg,
)
from keras_eqssl.methods.pair_model import IMAGENET_MEAN, IMAGENET_STD
from keras_eqssl.nn import MLP, backbone_from_name


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def _numpy_pool(x, factor):
    b, h, w, c = x.shape
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _numpy_normalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    x = np.asarray(images, np.float32)
    if np.asarray(images).dtype == np.uint8:
        x = x / 255.0
    return (x - np.float32(mean)) / np.float32(std)


# --- 1. the contract, every invariance x with/without reconstruction ----------------------------
# Tracing dominates the cost, so one cell fits in graph mode (BYOL + reconstruction: the EMA update
# inside tf.function; VICReg + reconstruction is traced by the learning test) and the rest eagerly
# (the losses' graph mode is checked in test_losses.py); uint8 views in the SimCLR and BYOL cells.
GRAPH_CELLS = {("byol", True)}


@pytest.mark.parametrize("recon", [True, False], ids=["recon", "no_recon"])
@pytest.mark.parametrize("invariance", sorted(INVARIANCES))
def test_pair_model_contract(invariance, recon, tmp_path):
    model = make_pair_model(invariance, recon=recon, total_steps=10 if invariance == "byol" else None)
    batch = random_pair_batch(batch=8, seed=len(invariance), specs={}, uint8=invariance in ("simclr", "byol"))
    eager = (invariance, recon) not in GRAPH_CELLS
    loaded = run_pair_model_test(model, batch, tmp_path, run_eagerly=eager)
    names = model.term_names()
    assert names[0] == INVARIANCES[invariance].short_name
    assert ("recon" in names) is recon
    if invariance == "byol":  # the EMA target network is saved and restored with the model
        for t, o in zip(loaded.target_backbone.weights, model.target_backbone.weights):
            np.testing.assert_array_equal(np.asarray(t), np.asarray(o))


def test_pair_model_contract_with_real_views_and_parameter_prediction(tmp_path):
    # Real photos through the simclr policy; CIPER-style pair targets and AugSelf-style differences.
    specs = simclr_specs()
    objectives = [
        ParameterPrediction(["crop", "flip"], mode="pair", hidden_units=[16], weight=0.5),
        ParameterPrediction(
            ["color_order", "grayscale", "crop_scale"],
            mode="difference",
            hidden_units=[16],
            features="all",
            weight=0.25,
        ),
        tiny_recon(weight=2.0, target_size=8),
    ]
    model = make_pair_model("vicreg", objectives=objectives, param_specs=specs)
    assert model.term_names() == [
        "vicreg", "vicreg_invariance", "vicreg_variance", "vicreg_covariance",
        "params", "params_v1_crop", "params_v2_crop", "params_v1_flip", "params_v2_flip",
        "params2", "params2_color_order", "params2_grayscale", "params2_crop_scale",
        "recon",
    ]  # fmt: skip
    run_pair_model_test(model, policy_pair_batch(batch=8), tmp_path, run_eagerly=True)


def test_pair_model_contract_simclr_with_essl_options(tmp_path):
    # E-SSL's SimCLR: cross-view InfoNCE and a projector ending in a BN without gamma and beta; saved and reloaded.
    inv = SimCLR(
        [16, 6], temperature=0.5, negatives="cross_view", projector_last_bias=False, projector_last_bn="non_affine"
    )
    loaded = run_pair_model_test(
        make_pair_model(inv), random_pair_batch(batch=8, seed=3, specs={}), tmp_path, run_eagerly=True
    )
    assert (loaded.invariance.negatives, loaded.invariance.projector_last_bn) == ("cross_view", "non_affine")
    assert loaded.invariance.projector.norm_layers[-1].gamma is None
    with pytest.raises(ValueError, match="negatives must be one of"):
        SimCLR([16, 6], negatives="same_view")
    with pytest.raises(ValueError, match="projector_last_bn must be one of"):
        SimCLR([16, 6], projector_last_bn="layer")


# --- 2. hand computations -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, loss",
    [
        (lambda: VICReg([16, 6], sim_weight=3.0, std_weight=7.0, cov_weight=2.0), lambda z1, z2: losses.vicreg(z1, z2, 3.0, 7.0, 2.0)),
        (lambda: SimCLR([16, 6], temperature=0.3), lambda z1, z2: losses.nt_xent(z1, z2, temperature=0.3)),
        (lambda: BarlowTwins([16, 6], lambd=0.05), lambda z1, z2: losses.barlow_twins(z1, z2, lambd=0.05)),
        (lambda: SimCLR([16, 6], temperature=0.5, negatives="cross_view", projector_last_bias=False, projector_last_bn="non_affine"),
         lambda z1, z2: losses.nt_xent(z1, z2, temperature=0.5, negatives="cross_view")),
    ],
    ids=["vicreg", "simclr", "barlow", "simclr_essl_options"],
)  # fmt: skip
def test_invariance_equals_loss_of_numpy_projections(make, loss):
    layer = make()
    h1, h2 = _rand(8, 12, seed=1), _rand(8, 12, seed=2)
    layer.build((None, 12))
    out = layer(h1, h2, training=True)
    z1, z2 = (numpy_mlp(layer.projector, h, training=True).astype("float32") for h in (h1, h2))
    expected = loss(z1, z2)
    expected = dict(expected) if isinstance(expected, dict) else {"total": expected}
    assert sorted(out) == sorted(expected) == sorted(layer.term_names)
    for key in expected:
        np.testing.assert_allclose(out[key], expected[key], rtol=2e-4, atol=2e-5, err_msg=key)


def test_invariance_without_projector_sees_the_features():
    h1, h2 = _rand(8, 6, seed=1), _rand(8, 6, seed=2)
    layer = VICReg(projector_units=[])
    layer.build((None, 6))
    assert layer.projector is None and layer.weights == []
    np.testing.assert_allclose(layer(h1, h2)["total"], losses.vicreg(h1, h2)["total"], rtol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_simsiam_is_symmetric_negative_cosine(training):
    layer = SimSiam(projector_units=[16, 8], predictor_units=[32, 8])
    layer.build((None, 12))
    assert layer.projector.last_batch_norm and len(layer.projector.norm_layers) == 2
    h1, h2 = _rand(8, 12, seed=3), _rand(8, 12, seed=4)
    z1, z2 = (numpy_mlp(layer.projector, h, training) for h in (h1, h2))
    p1, p2 = (numpy_mlp(layer.predictor, z, training) for z in (z1, z2))
    expected = -_cos(p1, z2).mean() / 2 - _cos(p2, z1).mean() / 2
    np.testing.assert_allclose(layer(h1, h2, training=training)["total"], expected, rtol=1e-4, atol=1e-5)


def test_simsiam_stops_the_gradient_on_the_projection_target():
    # Only the predictor branch carries gradient: d total / d h equals that of D(p, stopgrad(z)) written out.
    layer = SimSiam(projector_units=[8], predictor_units=[4, 8])
    layer.build((None, 6))
    h1, h2 = tf.Variable(_rand(5, 6, seed=5)), tf.Variable(_rand(5, 6, seed=6))

    def d(p, z):
        cos = tf.reduce_sum(tf.math.l2_normalize(p, 1) * tf.math.l2_normalize(tf.stop_gradient(z), 1), 1)
        return -tf.reduce_mean(cos)

    with tf.GradientTape() as tape:
        total = layer(h1, h2, training=False)["total"]
    g = tape.gradient(total, [h1, h2])
    with tf.GradientTape() as tape:
        z1, z2 = layer.project(h1, False), layer.project(h2, False)
        p1, p2 = layer.predictor(z1, training=False), layer.predictor(z2, training=False)
        manual = d(p1, z2) / 2 + d(p2, z1) / 2
    expected = tape.gradient(manual, [h1, h2])
    np.testing.assert_allclose(total, manual, rtol=1e-6)
    for a, b in zip(g, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_byol_layer_matches_numpy():
    layer = BYOL(projector_units=[16, 8], predictor_units=[12, 8])
    layer.build((None, 10))
    # the target projector starts as a copy of the online one, in its own variables
    assert len(layer.target_projector.weights) == len(layer.projector.weights)
    for t, o in zip(layer.target_projector.weights, layer.projector.weights):
        assert t is not o
        np.testing.assert_array_equal(np.asarray(t), np.asarray(o))
    with pytest.raises(ValueError, match="needs the target network's features"):
        layer(_rand(4, 10), _rand(4, 10))
    h1, h2, t1, t2 = (_rand(6, 10, seed=s) for s in range(4))
    p1, p2 = (numpy_mlp(layer.predictor, numpy_mlp(layer.projector, h, False), False) for h in (h1, h2))
    z1, z2 = (numpy_mlp(layer.target_projector, t, False) for t in (t1, t2))
    expected = (2 - 2 * _cos(p1, z2)).mean() + (2 - 2 * _cos(p2, z1)).mean()
    with tf.GradientTape() as tape:
        out = layer(h1, h2, (t1, t2), training=False)
    np.testing.assert_allclose(out["total"], expected, rtol=1e-4, atol=1e-5)
    # the loss trains the online heads only: the target projector gets no gradient
    target_vars = layer.target_projector.trainable_variables or layer.target_projector.weights
    online_vars = layer.projector.trainable_variables + layer.predictor.trainable_variables
    grads = tape.gradient(out["total"], {"target": target_vars, "online": online_vars})
    assert all(g is None for g in grads["target"])
    assert all(g is not None for g in grads["online"])


def _byol_model(base_momentum, total_steps):
    inv = tiny_invariance("byol", base_momentum=base_momentum)
    return make_pair_model(inv, total_steps=total_steps)


def _one_byol_step(model):
    """One train_step; (old target, new online, new target) values of the parameters (not BN statistics)."""
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    pairs = model.ema_pairs()
    assert [t for t, _ in pairs] == [model.target_backbone, model.invariance.target_projector]
    for t, o in pairs:  # the target network starts equal to the online one, in its own variables
        assert len(t.weights) == len(o.weights) > 0
        for a, b in zip(t.weights, o.weights):
            assert a is not b
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    params = [(tw, ow) for t, o in pairs for tw, ow in zip(t.weights, o.weights) if ow.trainable]
    assert len(params) == len(model.backbone.trainable_weights) + len(model.invariance.projector.trainable_weights)
    old_targets = [np.array(tw) for tw, _ in params]
    old_online = [np.array(ow) for _, ow in params]
    model.train_step(as_tensors(random_pair_batch(8, specs={}, seed=3)))
    new_online = [np.array(ow) for _, ow in params]
    new_targets = [np.array(tw) for tw, _ in params]
    assert any(not np.allclose(a, b) for a, b in zip(old_online, new_online)), "the online network did not move"
    return old_targets, new_online, new_targets


def _assert_ema(old_targets, new_online, new_targets, tau):
    for old, online, new in zip(old_targets, new_online, new_targets):
        np.testing.assert_allclose(new, tau * old + (1 - tau) * online, rtol=1e-5, atol=1e-6)


def test_byol_target_moves_by_constant_momentum():
    # total_steps=None: constant momentum tau = base_momentum.
    model = _byol_model(base_momentum=0.6, total_steps=None)
    _assert_ema(*_one_byol_step(model), tau=0.6)


@pytest.mark.parametrize("total_steps", [1, 4])
def test_byol_target_moves_by_scheduled_momentum(total_steps):
    model = _byol_model(base_momentum=0.5, total_steps=total_steps)
    # the first update (step k = 0) uses tau(0) = base_momentum (BYOL's cosine schedule, k = steps done before it)
    tau = float(byol_momentum(0, total_steps, 0.5))
    assert tau == 0.5
    _assert_ema(*_one_byol_step(model), tau=tau)


def test_byol_target_network_uses_batch_statistics_in_training():
    model = _byol_model(base_momentum=0.9, total_steps=None)
    batch = as_tensors(random_pair_batch(8, specs={}, seed=4))
    # make moving statistics differ from batch statistics everywhere, online and target
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    for seed in range(2):
        model.train_step(as_tensors(random_pair_batch(8, specs={}, seed=10 + seed)))
    _, terms = model.compute_losses(batch, training=True)

    def trainable_clone(layer):
        clone = type(layer).from_config(layer.get_config())
        if isinstance(clone, MLP):
            clone.build(layer.dense_layers[0].kernel.shape[:1])
        clone.set_weights(layer.get_weights())
        return clone

    inv, d_inv = model.invariance, model.split[0]
    target_backbone = trainable_clone(model.target_backbone)
    target_projector = trainable_clone(inv.target_projector)
    views = [model.normalize(batch["views"][v]) for v in ("v1", "v2")]
    h = [model.backbone(x, training=True)["pooled"][:, :d_inv] for x in views]
    t = [target_backbone(x, training=True)["pooled"][:, :d_inv] for x in views]
    p = [numpy_mlp(inv.predictor, numpy_mlp(inv.projector, x, True), True) for x in h]
    z = [numpy_mlp(target_projector, x, True) for x in t]
    expected = (2 - 2 * _cos(p[0], z[1])).mean() + (2 - 2 * _cos(p[1], z[0])).mean()
    np.testing.assert_allclose(terms["byol"], expected, rtol=1e-4, atol=1e-5)


# --- cross-attention reconstruction, on a hand-made context and pair ----------------------------
def _context(image_size=16, grid=(4, 4), d_equi=6, param_specs=None, spatial=True):
    return ModelContext(
        image_size=(image_size, image_size),
        grid_size=grid,
        has_spatial_map=spatial,
        feature_dim=2 * d_equi,
        invariant_dim=d_equi,
        equivariant_dim=d_equi,
        param_specs=param_specs,
    )


def _pair(batch=3, image_size=16, tokens=16, d=6, seed=0, variables=False):
    rng = np.random.default_rng(seed)
    toks = {v: rng.normal(size=(batch, tokens, d)).astype("float32") for v in ("v1", "v2")}
    if variables:
        toks = {v: tf.Variable(t) for v, t in toks.items()}
    return {
        "views": {v: rng.normal(size=(batch, image_size, image_size, 3)).astype("float32") for v in ("v1", "v2")},
        "tokens": toks,
    }


def _recon(context=None, **kwargs):
    layer = CrossAttentionReconstruction(**{"decoder_dim": 8, "decoder_filters": 8, **kwargs})
    layer.setup(context or _context())
    return layer


def _numpy_attention(q, kv, scale):
    logits = np.einsum("bnd,bmd->bnm", q.astype(np.float64), kv.astype(np.float64)) * scale
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return np.einsum("bnm,bmd->bnd", a, kv).astype("float32")


@pytest.mark.parametrize("query_from", ["target", "source"])
@pytest.mark.parametrize("name, target_size, scale", [("v2", 8, "sqrt_d"), ("v1", 4, 0.5), ("v2", 16, "none")])
def test_reconstruct_view_matches_numpy(name, target_size, scale, query_from):
    layer = _recon(reconstruct=name, target_size=target_size, scale=scale, query_from=query_from)
    assert layer.decoder.target_size == (target_size, target_size)
    pair = _pair(seed=1)
    x_hat, target = layer.reconstruct_view(pair, name, training=False)
    other = "v1" if name == "v2" else "v2"
    query = pair["tokens"][name if query_from == "target" else other]
    factor = {"sqrt_d": 1 / math.sqrt(6), "none": 1.0}.get(scale, scale)
    fused = _numpy_attention(query, pair["tokens"][other], factor)
    np.testing.assert_allclose(x_hat, layer.decoder(fused, training=False), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(target, _numpy_pool(pair["views"][name], 16 // target_size), rtol=1e-5, atol=1e-6)
    assert x_hat.shape == target.shape == (3, target_size, target_size, 3)
    expected = np.mean((np.asarray(x_hat) - np.asarray(target)) ** 2)
    np.testing.assert_allclose(layer(pair, training=False)["total"], expected, rtol=1e-5)


@pytest.mark.parametrize("query_from", ["target", "source"])
def test_query_from_wiring_gradients(query_from):
    # "source": nothing of the reconstructed view's tokens reaches the decoder (zero gradient);
    # "target": its tokens are the queries (non-zero gradient). The other view's always matter.
    layer = _recon(reconstruct="v2", query_from=query_from)
    pair = _pair(seed=2, variables=True)
    with tf.GradientTape() as tape:
        loss = layer(pair, training=True)["total"]
    g = tape.gradient(loss, pair["tokens"])
    assert g["v1"] is not None and np.any(np.asarray(g["v1"]) != 0)
    if query_from == "source":
        assert g["v2"] is None or not np.any(np.asarray(g["v2"]))
    else:
        assert g["v2"] is not None and np.any(np.asarray(g["v2"]) != 0)


@pytest.mark.parametrize("query_from", ["target", "source"])
def test_target_code_gives_the_decoder_the_rebuilt_views_pooled_tokens(query_from):
    layer = _recon(reconstruct="v2", query_from=query_from, target_code=True, target_size=8)
    pair = _pair(seed=3, variables=True)
    x_hat, _ = layer.reconstruct_view(pair, "v2", training=False)
    tokens = {v: np.asarray(t) for v, t in pair["tokens"].items()}
    query = tokens["v2" if query_from == "target" else "v1"]
    fused = _numpy_attention(query, tokens["v1"], 1 / math.sqrt(6))
    code = np.broadcast_to(tokens["v2"].mean(axis=1, keepdims=True), fused.shape)
    expected = layer.decoder(np.concatenate([fused, code], axis=-1), training=False)
    np.testing.assert_allclose(x_hat, expected, rtol=1e-4, atol=1e-5)
    with tf.GradientTape() as tape:
        loss = layer(pair, training=True)["total"]
    # even with queries from the source view, the rebuilt view now reaches the decoder (via its code)
    g = tape.gradient(loss, pair["tokens"])
    assert g["v2"] is not None and np.any(np.asarray(g["v2"]) != 0)
    clone = CrossAttentionReconstruction.from_config(layer.get_config())
    assert clone.target_code and clone.get_config() == layer.get_config()


def test_code_only_wiring_reaches_the_decoder_only_through_the_pooled_code():
    # query_from="source" + target_code: the rebuilt view's tokens in any order give the same
    # reconstruction, and the gradient on them is the same at every position (that of their mean);
    # the default wiring (queries from the rebuilt view) reads their layout.
    rng = np.random.default_rng(4)
    pair = _pair(seed=4, variables=True)
    shuffled = {
        **pair,
        "tokens": {**pair["tokens"], "v2": tf.gather(pair["tokens"]["v2"], rng.permutation(16), axis=1)},
    }
    for query_from, uses_layout in (("source", False), ("target", True)):
        layer = _recon(reconstruct="v2", query_from=query_from, target_code=True, target_size=8)
        x_hat = np.asarray(layer.reconstruct_view(pair, "v2", training=False)[0])
        x_shuffled = np.asarray(layer.reconstruct_view(shuffled, "v2", training=False)[0])
        assert (not np.allclose(x_hat, x_shuffled, atol=1e-5)) == uses_layout, query_from
        with tf.GradientTape() as tape:
            loss = layer(pair, training=True)["total"]
        g = np.asarray(tape.gradient(loss, pair["tokens"])["v2"])
        assert np.allclose(g, g[:, :1], atol=1e-9) == (not uses_layout), query_from


def test_reconstruct_both_is_the_mean_of_v1_and_v2():
    keras.utils.set_random_seed(0)  # the decoder's weights: v1 and v2 must give different losses
    layers = {r: _recon(reconstruct=r, target_size=8) for r in ("v1", "v2", "both")}
    for r in ("v1", "v2"):
        layers[r].set_weights(layers["both"].get_weights())
    assert layers["both"].views_to_reconstruct() == ["v1", "v2"]
    pair = _pair(seed=3)
    single = {r: float(layers[r](pair, training=False)["total"]) for r in ("v1", "v2")}
    assert not math.isclose(single["v1"], single["v2"], rel_tol=1e-3)
    both = float(layers["both"](pair, training=False)["total"])
    np.testing.assert_allclose(both, (single["v1"] + single["v2"]) / 2, rtol=1e-6)


def test_model_reconstruction_target_is_the_pooled_normalised_view():
    model = make_pair_model("vicreg", objectives=[tiny_recon(target_size=8, reconstruct="both")])
    batch = random_pair_batch(4, specs={}, uint8=True, seed=5)
    out = model.reconstructions(as_tensors(batch))
    assert sorted(out) == ["recon_v1", "recon_v2"]
    for v in ("v1", "v2"):
        x_hat, target = out[f"recon_{v}"]
        assert x_hat.shape == (4, 8, 8, 3)
        np.testing.assert_allclose(target, _numpy_pool(_numpy_normalize(batch["views"][v]), 2), atol=1e-5)


def test_reconstructions_accept_a_numpy_batch():
    model = make_pair_model("vicreg", recon=True)
    batch = random_pair_batch(4, specs={}, seed=6)
    x_hat, _ = model.reconstructions(batch)["recon_v2"]
    assert x_hat.shape == (4, TINY_SIZE, TINY_SIZE, 3)


# --- parameter prediction ------------------------------------------------------------------------
SPECS = [
    ParamSpec("crop", (2,), "continuous", 0.0, 1.0),
    ParamSpec("flip", (1,), "binary", 0.0, 1.0),
    ParamSpec("order", (3,), "categorical", 0, 4, "int32"),
]


def _param_batch(batch=16, seed=0):
    rng = np.random.default_rng(seed)

    def view():
        return {
            "crop": rng.random((batch, 2)).astype("float32"),
            "flip": rng.integers(0, 2, (batch, 1)).astype("float32"),
            "order": rng.integers(0, 5, (batch, 3)).astype("int32"),
        }

    return {"params": {"v1": view(), "v2": view()}, "rel_rotation": rng.normal(size=(batch, 4)).astype("float32")}


def _params_layer(targets, mode, **kwargs):
    layer = ParameterPrediction(targets, mode=mode, hidden_units=[8], **kwargs)
    layer.setup(_context(param_specs={"v1": SPECS, "v2": SPECS}))
    return layer


def test_parameter_prediction_difference_targets_match_numpy():
    layer = _params_layer(["crop", "flip", "order", "rel_rotation"], "difference")
    assert layer.term_names() == ["total", "crop", "flip", "order", "rel_rotation"]
    batch = _param_batch()
    p1, p2 = batch["params"]["v1"], batch["params"]["v2"]
    targets = {k: np.asarray(v) for k, v in layer._targets(batch).items()}
    np.testing.assert_allclose(targets["crop"], p1["crop"] - p2["crop"], atol=1e-7)
    np.testing.assert_array_equal(targets["flip"], np.logical_xor(p1["flip"], p2["flip"]).astype("float32"))
    np.testing.assert_array_equal(targets["order"], np.mod(p1["order"] - p2["order"], 5))
    assert targets["order"].min() >= 0 and np.any(p1["order"] < p2["order"])  # negative differences wrap around
    np.testing.assert_array_equal(targets["rel_rotation"], batch["rel_rotation"])  # from the batch's top level
    # head width: 2 + 1 + 3 * 5 logits + 4
    assert layer.head.dense_layers[-1].units == 2 + 1 + 15 + 4
    # the total is parameter_regression on the head's outputs and these targets
    pooled = {v: _rand(16, 6, seed=i) for i, v in enumerate(("v1", "v2"))}
    out = layer({"equivariant": pooled, "features": pooled, "batch": batch}, training=False)
    y = np.asarray(layer.head(np.concatenate([pooled["v1"], pooled["v2"]], -1), training=False))
    pred = {"crop": y[:, :2], "flip": y[:, 2:3], "order": y[:, 3:18], "rel_rotation": y[:, 18:]}
    specs = {"crop": SPECS[0], "flip": SPECS[1], "order": SPECS[2], "rel_rotation": RELATIVE_SPECS["rel_rotation"]}
    numpy_targets = {
        "crop": p1["crop"] - p2["crop"],
        "flip": (p1["flip"] != p2["flip"]).astype("float32"),
        "order": np.mod(p1["order"] - p2["order"], 5).astype("int32"),
        "rel_rotation": batch["rel_rotation"],
    }
    expected = losses.parameter_regression(pred, numpy_targets, specs)
    assert sorted(out) == sorted(expected)
    for key in out:
        np.testing.assert_allclose(out[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_parameter_prediction_pair_mode_keys():
    layer = _params_layer(["crop", "order", "rel_color"], "pair", features="all")
    assert layer.term_names() == ["total", "v1_crop", "v2_crop", "v1_order", "v2_order", "rel_color"]
    batch = {**_param_batch(), "rel_color": _rand(16, 2)}
    targets = layer._targets(batch)
    for view in ("v1", "v2"):
        for key in ("crop", "order"):
            np.testing.assert_array_equal(targets[f"{view}_{key}"], batch["params"][view][key])
    np.testing.assert_array_equal(targets["rel_color"], batch["rel_color"])
    # features="all": the head reads the whole representation (2 x feature_dim = 24 inputs)
    assert layer.head.dense_layers[0].kernel.shape[0] == 24


def test_parameter_prediction_batch_errors():
    layer = _params_layer(["crop", "rel_rotation"], "difference")
    batch = _param_batch()
    del batch["rel_rotation"]
    with pytest.raises(ValueError, match="the batch has no 'rel_rotation'"):
        layer._targets(batch)
    with pytest.raises(ValueError, match=r"records no params\[v\]\['crop'\] for both views"):
        layer._targets({"rel_rotation": _rand(4, 4), "params": {"v1": {"crop": _rand(4, 2)}}})


def test_parameter_prediction_relative_targets_need_no_policy():
    layer = ParameterPrediction(["rel_rotation"], hidden_units=[8])
    layer.setup(_context(param_specs=None))
    assert layer.term_names() == ["total", "rel_rotation"]


# --- 3. the split and the representation ---------------------------------------------------------
@pytest.mark.parametrize("split", [(5, 7), (10, 6), None])
def test_model_outputs_are_slices_of_the_backbone(split):
    mean, std = (0.3, 0.5, 0.7), (0.2, 0.25, 0.3)
    model = make_pair_model("simclr", split=split, mean=mean, std=std)
    images = np.random.default_rng(1).random((4, TINY_SIZE, TINY_SIZE, 3)).astype("float32")
    out = model(images)
    features = model.backbone(_numpy_normalize(images, mean, std), training=False)
    pooled, tokens = np.asarray(features["pooled"]), np.asarray(features["tokens"])
    np.testing.assert_allclose(out["embedding"], pooled, atol=1e-5)
    if split is None:
        np.testing.assert_array_equal(out["invariant"], out["embedding"])
        np.testing.assert_array_equal(out["equivariant"], out["embedding"])
        lo, hi = 0, TINY_DIM
    else:
        d_inv, d_equi = split
        np.testing.assert_allclose(out["invariant"], pooled[:, :d_inv], atol=1e-5)
        np.testing.assert_allclose(out["equivariant"], pooled[:, d_inv : d_inv + d_equi], atol=1e-5)
        lo, hi = d_inv, d_inv + d_equi
    # the objectives see the equivariant channels of the tokens and pooled vector, the invariance the first d_inv
    batch = as_tensors({"views": {"v1": images, "v2": images[::-1]}})
    pair = model.pair_outputs(batch, training=False)
    np.testing.assert_allclose(pair["tokens"]["v1"], tokens[..., lo:hi], atol=1e-5)
    np.testing.assert_allclose(pair["equivariant"]["v1"], out["equivariant"], atol=1e-6)
    np.testing.assert_allclose(pair["invariant"]["v1"], out["invariant"], atol=1e-6)
    np.testing.assert_allclose(pair["features"]["v2"], np.asarray(out["embedding"])[::-1], atol=1e-5)
    np.testing.assert_allclose(pair["views"]["v1"], _numpy_normalize(images, mean, std), atol=1e-6)


def test_uint8_images_equal_float_images_over_255():
    model = make_pair_model("vicreg")
    images = np.random.default_rng(2).integers(0, 256, (3, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    assert_outputs_equal(model(images), model(images.astype("float32") / 255.0), atol=1e-6, what="uint8 vs float")
    assert not np.allclose(model(images)["embedding"], model(images.astype("float32"))["embedding"])


# --- 4. construction and batch errors ------------------------------------------------------------
def test_reconstruction_needs_a_spatial_map():
    backbone = backbone_from_name("resnet18", stem="imagenet", width=0.0625)  # stride 32: 1x1 at 32px
    assert backbone.grid_size(32) == (1, 1)
    with pytest.raises(
        ValueError, match=r"needs a backbone with a spatial feature map.*\(1, 1\) grid at image size \(32, 32\)"
    ):
        PairModel(backbone, tiny_invariance("vicreg"), objectives=[tiny_recon()], image_size=32)
    # without the objective the same model is fine
    PairModel(backbone, tiny_invariance("vicreg"), image_size=32)


@pytest.mark.parametrize("split", [(10, 7), (16, 1), (0, 8), (8, 0)])
def test_split_must_fit_the_features(split):
    with pytest.raises(ValueError, match=rf"split=\({split[0]}, {split[1]}\) does not fit the backbone's 16 channels"):
        make_pair_model("vicreg", split=split)


def test_parameter_target_not_recorded_by_the_policy():
    with pytest.raises(ValueError, match=r"target 'rotation' is not recorded by the augmentation policy.*'crop'"):
        make_pair_model("vicreg", objectives=[ParameterPrediction(["crop", "rotation"])], param_specs=simclr_specs())


@pytest.mark.parametrize(
    "target_size, match",
    [
        (12, "target_size 12 must divide the view size 16"),
        (32, "target_size 32 must divide the view size 16"),
        (4, "must be `grid_size` times a power of two"),  # divides 16, but the grid is 8x8
        (-1, "target_size must be a positive int"),  # 0 means the view size, as None
    ],
)
def test_reconstruction_target_size_errors(target_size, match):
    with pytest.raises(ValueError, match=match):
        make_pair_model("vicreg", objectives=[tiny_recon(target_size=target_size)])


def test_bad_components():
    with pytest.raises(TypeError, match="backbone must be a keras_eqssl.nn.Backbone"):
        PairModel(keras.layers.Dense(3), VICReg())
    with pytest.raises(TypeError, match="invariance must be an Invariance layer"):
        PairModel(tiny_backbone(), tiny_recon())
    with pytest.raises(ValueError, match="reconstruct must be one of"):
        CrossAttentionReconstruction(reconstruct="v3")
    with pytest.raises(ValueError, match="query_from must be one of"):
        CrossAttentionReconstruction(query_from="key")


@pytest.mark.parametrize(
    "make_batch, match",
    [
        (lambda b: {"images": b["views"]["v1"]}, r"trains on batches \{'views'.*keys \['images'\]"),
        (lambda b: {"views": {"v1": b["views"]["v1"]}}, r"batch\['views'\] lacks \['v2'\]"),
        (
            lambda b: {"views": {"v1": b["views"]["v1"][:, :8, :8], "v2": b["views"]["v2"][:, :8, :8]}},
            r"has shape \(4, 8, 8, 3\); the model was built for \(B, 16, 16, 3\) views",
        ),
    ],
    ids=["no_views", "no_v2", "wrong_size"],
)
def test_bad_batches_fail_at_fit_time(make_batch, match):
    model = make_pair_model("vicreg")
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=match):
        model.fit(make_batch(random_pair_batch(4, specs={})), batch_size=4, epochs=1, verbose=0)


# --- 5. the exported encoder ---------------------------------------------------------------------
def test_encoder_excludes_decoder_and_heads():
    model = make_pair_model("byol", recon=True)
    images = np.random.default_rng(3).random((4, TINY_SIZE, TINY_SIZE, 3)).astype("float32")
    with tf.GradientTape() as tape:
        out = model(images, training=False)
        total = sum(tf.reduce_sum(v) for v in out.values())
    grads = tape.gradient(total, model.trainable_variables)
    touched = {id(v) for v, g in zip(model.trainable_variables, grads) if g is not None}
    assert touched == {id(v) for v in model.backbone.trainable_variables}
    # everything else stays out of model(images): perturbing the heads, the decoder and the target changes nothing
    decoder = model.objectives[0].decoder
    heads = [decoder, model.invariance, model.target_backbone]
    batch = as_tensors(random_pair_batch(4, specs={}, seed=7))
    x_hat_before = np.asarray(model.reconstructions(batch)["recon_v2"][0])
    for layer in heads:
        for w in layer.weights:
            w.assign(w + 0.5)
    assert not np.allclose(model.reconstructions(batch)["recon_v2"][0], x_hat_before)
    assert_outputs_equal(out, model(images, training=False), what="model(images) after moving the heads")
    backbone_ids = {id(w) for w in model.backbone.weights}
    assert not backbone_ids & {id(w) for layer in heads for w in layer.weights}


# --- 6. Keras callbacks --------------------------------------------------------------------------
def _event_tags(log_dir):
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def _callback_model():
    model = make_pair_model(
        "vicreg", recon=True, objectives=[ParameterPrediction(["crop"], hidden_units=[8])], param_specs=simclr_specs()
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    return model


def test_keras_callbacks(tmp_path):
    model = _callback_model()
    batch = policy_pair_batch(batch=8, seed=1)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
    ]
    history = model.fit(batch, batch_size=4, epochs=2, verbose=0, callbacks=callbacks, validation_data=batch)
    assert len(history.history["loss"]) == 2 and "val_recon" in history.history
    assert not model.stop_training
    assert not os.path.exists(tmp_path / "backup" / "training_metadata.json")  # removed after a finished run
    loaded = keras.models.load_model(str(tmp_path / "ckpt.keras"))
    images = batch["views"]["v1"]
    assert_outputs_equal(model(images), loaded(images), what="ModelCheckpoint model(images)")


def test_terminate_on_nan_stops_a_diverging_run():
    model = make_pair_model("vicreg")
    model.compile(optimizer=keras.optimizers.SGD(1e30), run_eagerly=True)
    history = model.fit(
        random_pair_batch(16, specs={}), batch_size=4, epochs=1, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()]
    )
    assert model.stop_training and int(model.optimizer.iterations) < 4, history.history


def test_tensorboard_callback_logs_every_term(tmp_path):
    pytest.importorskip("tensorboard", reason="keras.callbacks.TensorBoard needs the tensorboard package")
    model = _callback_model()
    model.fit(
        policy_pair_batch(batch=8, seed=1),
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))],
    )
    assert glob.glob(str(tmp_path / "logs" / "train" / "events.out.tfevents.*"))
    tags = _event_tags(str(tmp_path / "logs"))
    expected = {f"epoch_{name}" for name in ["loss", *model.term_names()]}
    assert {"epoch_recon", "epoch_vicreg_variance", "epoch_params_v1_crop"} <= expected
    assert expected <= tags, f"missing TensorBoard tags {sorted(expected - tags)}"


class _StopAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.weights = [np.array(w) for w in self.model.weights]
            raise RuntimeError("interrupted")


class _FirstEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "epoch"):
            self.epoch, self.weights = epoch, [np.array(w) for w in self.model.weights]


def test_backup_and_restore_resumes_an_interrupted_run(tmp_path):
    batch = random_pair_batch(8, specs={}, seed=8)
    backup = str(tmp_path / "backup")
    model = make_pair_model("byol")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    stop = _StopAfterEpoch(1)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(batch, batch_size=4, epochs=3, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup), stop])
    resumed = make_pair_model("byol")
    resumed.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    first = _FirstEpoch()
    history = resumed.fit(
        batch, batch_size=4, epochs=3, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup), first]
    )
    assert first.epoch == 2 and len(history.history["loss"]) == 1
    assert len(first.weights) == len(stop.weights)
    for a, b in zip(first.weights, stop.weights):  # backbone, heads and the EMA target
        np.testing.assert_array_equal(a, b)


# --- 7. a learning signal ------------------------------------------------------------------------
def test_reconstruction_loss_decreases_on_real_views():
    keras.utils.set_random_seed(0)
    batch = policy_pair_batch(batch=16, seed=2)
    model = make_pair_model("vicreg", recon=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(batch, batch_size=8, epochs=15, shuffle=False, verbose=0)  # 30 steps
    recon = history.history["recon"]
    assert all(np.isfinite(recon)) and len(recon) == 15
    assert recon[-1] < 0.7 * recon[0], f"recon did not decrease: {recon[0]:.4f} -> {recon[-1]:.4f}"
    # and it beats the best constant image (the per-channel mean of the normalised targets)
    target = _numpy_normalize(batch["views"]["v2"])
    baseline = np.mean((target - target.mean(axis=(0, 1, 2))) ** 2)
    assert recon[-1] < baseline, f"recon {recon[-1]:.4f} does not beat the constant-colour baseline {baseline:.4f}"
