"""STL's objective (Yu et al., NeurIPS 2024): the pair bookkeeping, the hypernetwork map and both NT-Xent
losses checked against NumPy, gradients, errors, the config section, and the `PairModel` contract.

The aligned-pair augmentation itself is tested in tests/test_policies.py (`test_stl_*`)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from method_helpers import as_tensors, make_pair_model, random_pair_batch, run_pair_model_test
from nn_helpers import numpy_mlp

from keras_eqssl.default_config import get_config
from keras_eqssl.methods import ModelContext
from keras_eqssl.methods.objectives.stl import STL, pair_halves, partner_swap

D_EQUI, D_ALL, B = 6, 12, 8
TINY = dict(projector_units=[16, 8], transform_units=[16, 8], transform_projector_units=[8, 8])


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _context():
    return ModelContext(
        image_size=(16, 16),
        grid_size=(4, 4),
        has_spatial_map=True,
        feature_dim=D_ALL,
        invariant_dim=D_EQUI,
        equivariant_dim=D_EQUI,
    )


def _layer(seed=0, **kwargs):
    """A set-up STL with every weight random, BN moving stats included (so inference BN is not ~identity)."""
    layer = STL(**{**TINY, **kwargs})
    layer.setup(_context())
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        shape = tuple(w.shape)
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            w.assign((rng.normal(size=shape) * (0.5 if "kernel" in w.path else 0.2)).astype("float32"))
    return layer


def _pair(seed=0):
    pooled = {v: _rand(B, D_EQUI, seed=seed + i) for i, v in enumerate(("v1", "v2"))}
    features = {v: _rand(B, D_ALL, seed=seed + 10 + i) for i, v in enumerate(("v1", "v2"))}
    return {"equivariant": pooled, "features": features}


# --- NumPy references ------------------------------------------------------------------------------
def _np_hyper(kernel, y, u) -> np.ndarray:
    """W(u) y with W(u) = reshape(u @ kernel, (d, d)), row = output."""
    d = y.shape[1]
    w = (np.asarray(u, np.float64) @ np.asarray(kernel, np.float64)).reshape(-1, d, d)
    return np.einsum("bij,bj->bi", w, np.asarray(y, np.float64))


def _np_nt_xent(a, b, t) -> float:
    """SimCLR's NT-Xent: z = l2norm(concat[a, b]) (2N rows), positive of row i is row i +- N."""
    z = np.concatenate([a, b], 0).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(a)
    s = z @ z.T / t
    np.fill_diagonal(s, -np.inf)
    positive = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    log_softmax = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(2 * n), positive].mean())


def _partner(b: int) -> int:
    return b + 1 if b % 2 == 0 else b - 1


# --- 1. the pair bookkeeping -----------------------------------------------------------------------
def test_partner_swap_and_pair_halves():
    np.testing.assert_array_equal(partner_swap(np.arange(8)), [1, 0, 3, 2, 5, 4, 7, 6])
    x = np.arange(12).reshape(6, 2)
    np.testing.assert_array_equal(partner_swap(x), x[[1, 0, 3, 2, 5, 4]])
    even, odd = pair_halves(np.arange(8))
    np.testing.assert_array_equal(even, [0, 2, 4, 6])
    np.testing.assert_array_equal(odd, [1, 3, 5, 7])
    # graph mode with an unknown batch
    fn = tf.function(lambda x: (partner_swap(x), *pair_halves(x)), input_signature=[tf.TensorSpec([None], tf.int32)])
    swapped, even, odd = fn(tf.range(4))
    np.testing.assert_array_equal(swapped, [1, 0, 3, 2])
    np.testing.assert_array_equal(even, [0, 2])
    np.testing.assert_array_equal(odd, [1, 3])


# --- 2. the hypernetwork map -----------------------------------------------------------------------
def test_predictions_apply_the_partners_code():
    layer = _layer()
    y1, y2 = _rand(B, D_EQUI, seed=1), _rand(B, D_EQUI, seed=2)
    u12, u21 = _rand(B, 8, seed=3), _rand(B, 8, seed=4)
    y1_hat, y2_hat = (np.asarray(t) for t in layer.predictions(y1, y2, u12, u21))
    kernel = np.asarray(layer.hypernetwork.weights_from_code.kernel)
    assert kernel.shape == (8, D_EQUI * D_EQUI)
    for b in range(B):
        p = _partner(b)
        w21 = (u21[p] @ kernel).reshape(D_EQUI, D_EQUI)  # image b's view 2 -> view 1 with its partner's code
        w12 = (u12[p] @ kernel).reshape(D_EQUI, D_EQUI)
        np.testing.assert_allclose(y1_hat[b], w21 @ y2[b], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(y2_hat[b], w12 @ y1[b], rtol=1e-4, atol=1e-4)
    # the own code gives something else
    assert not np.allclose(y1_hat[0], (u21[0] @ kernel).reshape(D_EQUI, D_EQUI) @ y2[0], atol=1e-3)


# --- 3. both losses against NumPy ------------------------------------------------------------------
@pytest.mark.parametrize("features", ["equivariant", "all"])
def test_losses_match_numpy(features):
    layer = _layer(features=features, equi_weight=0.7, trans_weight=0.3, temperature=0.5)
    pair = _pair()
    out = {k: float(v) for k, v in layer(pair, training=False).items()}
    assert sorted(out) == sorted(layer.term_names()) == ["equi", "total", "trans"]

    source = pair["equivariant"] if features == "equivariant" else pair["features"]
    d = D_EQUI if features == "equivariant" else D_ALL
    assert layer.transform_encoder.dense_layers[0].kernel.shape[0] == 2 * d
    assert layer.equi_projector.dense_layers[0].kernel.shape[0] == d
    y1, y2 = source["v1"].astype(np.float64), source["v2"].astype(np.float64)
    g, p_eq, p_t = layer.transform_encoder, layer.equi_projector, layer.transform_projector
    kernel = layer.hypernetwork.weights_from_code.kernel

    u12 = numpy_mlp(g, np.concatenate([y1, y2], 1))
    u21 = numpy_mlp(g, np.concatenate([y2, y1], 1))
    partners = [_partner(b) for b in range(B)]
    y1_hat = _np_hyper(kernel, y2, u21[partners])
    y2_hat = _np_hyper(kernel, y1, u12[partners])
    equi = _np_nt_xent(
        np.concatenate([numpy_mlp(p_eq, y1), numpy_mlp(p_eq, y2)]),
        np.concatenate([numpy_mlp(p_eq, y1_hat), numpy_mlp(p_eq, y2_hat)]),
        0.5,
    )
    # L_trans: row i of u_A (image A_i = 2i) pairs with row i of u_B (its partner 2i + 1), same direction;
    # rows 0..B/2-1 are t1 -> t2 (u12), rows B/2.. the reverse (u21).
    u_a = np.stack([u12[2 * i] for i in range(B // 2)] + [u21[2 * i] for i in range(B // 2)])
    u_b = np.stack([u12[2 * i + 1] for i in range(B // 2)] + [u21[2 * i + 1] for i in range(B // 2)])
    trans = _np_nt_xent(numpy_mlp(p_t, u_a), numpy_mlp(p_t, u_b), 0.5)

    np.testing.assert_allclose(out["equi"], equi, rtol=1e-4)
    np.testing.assert_allclose(out["trans"], trans, rtol=1e-4)
    np.testing.assert_allclose(out["total"], 0.7 * equi + 0.3 * trans, rtol=1e-4)
    # a wrong pairing (u_B in another order) is a different loss: the positives are the rows above
    assert abs(_np_nt_xent(numpy_mlp(p_t, u_a), numpy_mlp(p_t, u_b[::-1]), 0.5) - trans) > 1e-3


# --- 4. gradients ----------------------------------------------------------------------------------
def test_gradients_reach_the_backbone_and_every_head():
    stl = STL(**TINY)
    model = make_pair_model("simclr", objectives=[stl], split=(8, 8))
    batch = as_tensors(random_pair_batch(batch=B))
    backbone = model.backbone.trainable_variables
    heads = stl.trainable_variables
    parts = (stl.equi_projector, stl.transform_encoder, stl.transform_projector, stl.hypernetwork)
    assert len(heads) == sum(len(p.trainable_variables) for p in parts) > 0
    with tf.GradientTape(persistent=True) as tape:
        _, terms = model.compute_losses(batch, training=True)
    for term in ("stl_equi", "stl_trans"):  # no stop-gradient: each loss reaches the backbone
        grads = tape.gradient(terms[term], backbone)
        assert any(g is not None and np.any(np.asarray(g) != 0) for g in grads), term
    grads = tape.gradient(terms["stl"], heads)
    for v, g in zip(heads, grads):
        assert g is not None and np.any(np.asarray(g) != 0), f"no gradient for {v.path}"
    # L_equi trains g through the hypernetwork's code
    grads = tape.gradient(terms["stl_equi"], stl.transform_encoder.trainable_variables)
    assert all(g is not None and np.any(np.asarray(g) != 0) for g in grads)
    del tape


# --- 5. errors -------------------------------------------------------------------------------------
def test_odd_batch_is_a_clear_error():
    layer = _layer()
    pair = _pair()
    odd = {k: {v: x[:7] for v, x in part.items()} for k, part in pair.items()}
    with pytest.raises(ValueError, match=r"rows \(2i, 2i\+1\).*`stl`.*even.*\(7, 6\)"):
        layer(odd, training=False)
    with pytest.raises(ValueError, match="even"):
        partner_swap(np.arange(5))
    spec = tf.TensorSpec([None, D_EQUI], tf.float32)
    fn = tf.function(
        lambda a, b: layer({"equivariant": {"v1": a, "v2": b}, "features": None}, training=False)["total"],
        input_signature=[spec, spec],
    )
    assert np.isfinite(float(fn(pair["equivariant"]["v1"], pair["equivariant"]["v2"])))
    with pytest.raises(tf.errors.InvalidArgumentError, match="even"):
        fn(odd["equivariant"]["v1"], odd["equivariant"]["v2"])


def test_argument_errors():
    for kwargs, match in [
        (dict(weight=-1), "weight"),
        (dict(equi_weight=-0.1), "equi_weight"),
        (dict(trans_weight=-1), "trans_weight"),
        (dict(temperature=0), "temperature"),
        (dict(features="tokens"), "features"),
        (dict(hypernetwork_init="he_normal"), "hypernetwork_init"),
        (dict(transform_units=[]), "transform_units"),
    ]:
        with pytest.raises(ValueError, match=match):
            STL(**kwargs)


# --- 6. config -------------------------------------------------------------------------------------
def test_config_section_and_problems():
    assert STL.config_section() == {
        "enabled": False,
        "weight": 1.0,
        "equi_weight": 1.0,
        "trans_weight": 0.1,
        "temperature": 0.2,
        "projector_units": "512-128",
        "transform_units": "128-128",
        "transform_projector_units": "128-128",
        "features": "equivariant",
        "hypernetwork_init": "torch_linear",
    }
    assert STL.choices == {"features": ("equivariant", "all"), "hypernetwork_init": ("torch_linear", "glorot_uniform")}
    assert set(STL.resume_apply) == {"weight", "equi_weight", "trans_weight", "temperature"}

    config = get_config()
    config.augment.policy = "simclr"
    config.data.batch_size = 64
    problems = STL.config_problems(config)
    assert len(problems) == 1 and "config.augment.policy" in problems[0] and "'simclr'" in problems[0]
    config.augment.policy = "stl"
    assert STL.config_problems(config) == []
    config.data.batch_size = 63
    problems = STL.config_problems(config)
    assert len(problems) == 1 and "config.data.batch_size" in problems[0]

    layer = STL.from_config_section({**STL.config_section(), "transform_units": "32-16"}, config, synchronized=True)
    assert layer.transform_units == [32, 16] and layer.projector_units == [512, 128] and layer.synchronized


# --- 7. serialisation and the PairModel contract ---------------------------------------------------
def test_get_config_round_trip():
    layer = STL(
        weight=0.5, equi_weight=0.8, trans_weight=0.2, temperature=0.3, features="all",
        hypernetwork_init="glorot_uniform", **TINY,
    )  # fmt: skip
    config = layer.get_config()
    for key in ("weight", "equi_weight", "trans_weight", "temperature", "features", "hypernetwork_init", "synchronized",
                *TINY):  # fmt: skip
        assert key in config
    assert STL.from_config(config).get_config() == config


@pytest.mark.parametrize("split", [(8, 8), None], ids=["split", "no_split"])
def test_pair_model_contract(split, tmp_path):
    model = make_pair_model("simclr", objectives=[STL(**TINY)], split=split)
    assert "stl_equi" in model.term_names() and "stl_trans" in model.term_names()
    # Tracing dominates the cost: one cell fits in graph mode, the other eagerly (as in test_methods.py).
    run_pair_model_test(model, random_pair_batch(batch=B), tmp_path, run_eagerly=split is None)


# --- 8. the official code's initialisation and recipe (tools/parity/stl.py checks the numbers) ------
@pytest.mark.parametrize("init", ["torch_linear", "glorot_uniform"])
def test_hypernetwork_init(init):
    """torch's nn.Linear default is uniform(+-1/sqrt(k)); Keras's glorot is uniform(+-sqrt(6/(k + d*d)))."""
    import keras

    keras.utils.set_random_seed(0)
    d, k = 32, 16
    layer = STL(**{**TINY, "transform_units": [16, k]}, hypernetwork_init=init)
    layer.setup(ModelContext(image_size=(16, 16), grid_size=(4, 4), has_spatial_map=True, feature_dim=d,
                             invariant_dim=d, equivariant_dim=d))  # fmt: skip
    kernel = np.asarray(layer.hypernetwork.weights_from_code.kernel)
    bound = 1 / np.sqrt(k) if init == "torch_linear" else np.sqrt(6 / (k + d * d))
    assert kernel.shape == (k, d * d)
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound
    assert abs(kernel.std() - bound / np.sqrt(3)) < 0.02 * bound  # uniform(-b, b) has std b / sqrt(3)
    assert layer.hypernetwork.get_config()["kernel_initializer"] == init


def test_stl_config_follows_the_official_recipe():
    """configs/stl.py: torch's coupled SGD, zero-init residual BNs, a bias-free last projector layer, torch's init."""

    from train_helpers import load_config

    from keras_eqssl.config_validation import validate
    from keras_eqssl.methods import CoupledSGD
    from keras_eqssl.methods.factory import model_from_config, optimizer_from_config

    config = load_config("stl")
    config.model.width, config.augment.size, config.data.batch_size = 0.0625, 32, 8
    config.model.invariance.simclr.projector_units, config.model.stl.projector_units = "16-8", "16-8"
    config.model.stl.transform_units = config.model.stl.transform_projector_units = "8-8"
    validate(config)
    assert (config.optim.weight_decay_mode, config.model.zero_init_residual) == ("coupled", "on")
    assert (config.model.invariance.simclr.projector_last_bias, config.model.stl.hypernetwork_init) == (
        False,
        "torch_linear",
    )

    optimizer = optimizer_from_config(config)
    assert isinstance(optimizer, CoupledSGD) and optimizer.momentum == 0.9 and not optimizer.nesterov
    assert optimizer.weight_decay == pytest.approx(5e-4)
    model = model_from_config(config)
    assert not model.invariance.projector.dense_layers[-1].use_bias
    assert model.backbone.zero_init_residual
    last_gammas = [w for w in model.backbone.weights if w.path.endswith("_bn2/gamma") and "stack" in w.path]
    assert last_gammas and all(not np.any(np.asarray(g)) for g in last_gammas)
    assert model.objectives[0].hypernetwork.kernel_initializer == "torch_linear"
    assert model.mean == pytest.approx((0.485, 0.456, 0.406))  # normalization "auto": ImageNet's on photos

    config.model.normalization = "stl10"  # the official code's STL10 statistics
    config.model.zero_init_residual, config.model.invariance.simclr.projector_last_bias = "off", True
    model = model_from_config(config)
    assert model.mean == pytest.approx((0.43, 0.42, 0.39)) and model.std == pytest.approx((0.27, 0.26, 0.27))
    assert not model.backbone.zero_init_residual and model.invariance.projector.dense_layers[-1].use_bias
