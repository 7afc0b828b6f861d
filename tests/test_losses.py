"""Each loss against a small hand computation in NumPy, through the shared `run_loss_test`."""

import math

import numpy as np
import pytest
import tensorflow as tf
from loss_helpers import run_loss_test

from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.losses import (
    barlow_twins,
    byol_momentum,
    ema_update,
    negative_cosine,
    nt_xent,
    parameter_regression,
    reconstruction_mse,
    vicreg,
)

BAD_PAIRS = [
    (np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32")),  # dim mismatch
    (np.zeros((4, 3), "float32"), np.zeros((5, 3), "float32")),  # batch mismatch
    (np.zeros((4, 3, 1), "float32"), np.zeros((4, 3, 1), "float32")),  # not (N, D)
]


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


# --- NT-Xent ---------------------------------------------------------------------------------
def test_nt_xent_four_vectors_by_hand():
    # Two pairs, four 2-d vectors: z_1 = a1, z_2 = a2 (the pair of image 1), z_3 = b1, z_4 = b2.
    a1, b1 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    a2, b2 = np.array([1.0, 1.0]), np.array([-1.0, 3.0])
    t = 0.5
    zs = [_unit(a1), _unit(a2), _unit(b1), _unit(b2)]  # z_1..z_4 in SimCLR's interleaved order

    def ell(i, j):  # -log( exp(s_ij / t) / sum_{k != i} exp(s_ik / t) ), written out
        sims = [zs[i] @ zs[k] / t for k in range(4)]
        denom = sum(math.exp(sims[k]) for k in range(4) if k != i)
        return -math.log(math.exp(sims[j]) / denom)

    expected = (ell(0, 1) + ell(1, 0) + ell(2, 3) + ell(3, 2)) / 4
    z1, z2 = np.array([a1, b1], "float32"), np.array([a2, b2], "float32")
    run_loss_test(nt_xent, (z1, z2), {"temperature": t}, expected=expected, bad_args=BAD_PAIRS)


def test_nt_xent_random_batch_matches_dense_formula(rng):
    z1, z2 = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    logits = z @ z.T / 0.1
    np.fill_diagonal(logits, -np.inf)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    pos = np.r_[np.arange(6) + 6, np.arange(6)]
    expected = -log_prob[np.arange(12), pos].mean()
    run_loss_test(nt_xent, (z1, z2), expected=expected, rtol=1e-5)


def _np_cross_view_info_nce(z1, z2, t) -> float:
    """E-SSL's `info_nce_loss(z1, z2) / 2 + info_nce_loss(z2, z1) / 2` in float64 NumPy."""
    a = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    b = z2 / np.linalg.norm(z2, axis=1, keepdims=True)

    def one_way(u, v):  # cross-entropy of the rows of u @ v.T / t with labels 0..N-1
        logits = u @ v.T / t
        log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -np.diag(log_prob).mean()

    return one_way(a, b) / 2 + one_way(b, a) / 2


def test_nt_xent_cross_view_matches_numpy_info_nce(rng):
    z1, z2 = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    expected = _np_cross_view_info_nce(z1.astype(np.float64), z2.astype(np.float64), 0.5)
    kwargs = {"temperature": 0.5, "negatives": "cross_view"}
    run_loss_test(nt_xent, (z1, z2), kwargs, expected=expected, rtol=1e-5, bad_args=BAD_PAIRS)
    # a different loss from NT-Xent: same-view negatives are left out
    assert abs(float(nt_xent(z1, z2, temperature=0.5)) - expected) > 1e-2


def test_nt_xent_cross_view_two_pairs_by_hand():
    # N = 2: -log(e^{s11/t} / (e^{s11/t} + e^{s12/t})) for each anchor, over both directions.
    z1 = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    z2 = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
    t, c = 1.0, 1 / math.sqrt(2)
    terms = [
        -math.log(math.exp(1) / (math.exp(1) + math.exp(c))),  # z1_0: positive z2_0 (1), negative z2_1 (c)
        -math.log(math.exp(c) / (math.exp(0) + math.exp(c))),  # z1_1: positive z2_1 (c), negative z2_0 (0)
        -math.log(math.exp(1) / (math.exp(1) + math.exp(0))),  # z2_0: positive z1_0 (1), negative z1_1 (0)
        -math.log(math.exp(c) / (math.exp(c) + math.exp(c))),  # z2_1: positive z1_1 (c), negative z1_0 (c)
    ]
    assert float(nt_xent(z1, z2, temperature=t, negatives="cross_view")) == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_nt_xent_rejects_bad_negatives():
    with pytest.raises(ValueError, match="negatives"):
        nt_xent(np.ones((2, 2)), np.ones((2, 2)), negatives="same_view")


def test_nt_xent_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature=0"):
        nt_xent(np.ones((2, 2)), np.ones((2, 2)), temperature=0)


# --- VICReg ----------------------------------------------------------------------------------
def _vicreg_by_hand(z1, z2, sim_w, std_w, cov_w, eps):
    n, d = z1.shape

    def var_cov(z):
        std = [math.sqrt(np.var(z[:, j], ddof=1) + eps) for j in range(d)]
        v = sum(max(0.0, 1.0 - s) for s in std) / d
        zc = z - z.mean(axis=0)
        c = sum(
            (sum(zc[b, i] * zc[b, j] for b in range(n)) / (n - 1)) ** 2 for i in range(d) for j in range(d) if i != j
        )
        return v, c / d

    inv = sum((z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)
    (v1, c1), (v2, c2) = var_cov(z1), var_cov(z2)
    terms = {"invariance": inv, "variance": (v1 + v2) / 2, "covariance": c1 + c2}
    terms["total"] = sim_w * inv + std_w * terms["variance"] + cov_w * terms["covariance"]
    return terms


@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (10.0, 10.0, 1.0)], ids=["vicreg", "sie"])
def test_vicreg_terms_on_4x3_by_hand(weights):
    z1 = np.array([[0.1, 0.5, -0.3], [0.4, -0.2, 0.8], [-0.6, 0.1, 0.2], [0.3, 0.9, -0.5]], "float32")
    z2 = np.array([[0.2, 0.4, -0.1], [0.5, -0.4, 0.6], [-0.3, 0.0, 0.4], [0.1, 1.1, -0.2]], "float32")
    expected = _vicreg_by_hand(z1.astype(np.float64), z2.astype(np.float64), *weights, 1e-4)
    assert expected["variance"] > 0 and expected["covariance"] > 0  # every term is exercised
    kwargs = dict(zip(("sim_weight", "std_weight", "cov_weight"), weights))
    run_loss_test(vicreg, (z1, z2), kwargs, expected=expected, bad_args=BAD_PAIRS)


def test_vicreg_needs_two_examples():
    with pytest.raises(ValueError, match=r"z1.shape=\(1, 3\)"):
        vicreg(np.ones((1, 3)), np.ones((1, 3)))


# --- Barlow Twins ----------------------------------------------------------------------------
def test_barlow_twins_by_hand():
    z1 = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.5]], "float32")
    z2 = np.array([[0.5, 1.0], [2.0, 0.0], [1.0, 1.5]], "float32")
    lambd, eps = 0.1, 1e-5

    def standardize(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)  # np.var is biased, like BatchNorm

    a, b = standardize(z1.astype(np.float64)), standardize(z2.astype(np.float64))
    c = np.array([[sum(a[k, i] * b[k, j] for k in range(3)) / 3 for j in range(2)] for i in range(2)])
    expected = (1 - c[0, 0]) ** 2 + (1 - c[1, 1]) ** 2 + lambd * (c[0, 1] ** 2 + c[1, 0] ** 2)
    run_loss_test(barlow_twins, (z1, z2), {"lambd": lambd}, expected=expected, bad_args=BAD_PAIRS)


def test_barlow_twins_is_zero_for_identical_decorrelated_views():
    z = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], "float32")  # standardised, uncorrelated
    assert float(barlow_twins(z, z, eps=0.0)) == pytest.approx(0.0, abs=1e-6)


# --- negative cosine -------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["simsiam", "byol"])
def test_negative_cosine_by_hand(variant):
    p = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 3.0, 4.0]], "float32")
    z = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -3.0, -4.0]], "float32")
    cos = [1.0, 1 / math.sqrt(2), -1.0]
    expected = -np.mean(cos) if variant == "simsiam" else np.mean([2 - 2 * c for c in cos])
    run_loss_test(
        negative_cosine, (p, z), {"variant": variant}, expected=expected,
        grad_args=(0,), no_grad_args=(1,), bad_args=BAD_PAIRS,
    )  # fmt: skip


def test_negative_cosine_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant='moco'"):
        negative_cosine(np.ones((2, 2)), np.ones((2, 2)), variant="moco")


# --- reconstruction --------------------------------------------------------------------------
def test_reconstruction_mse_by_hand(rng):
    pred = rng.normal(size=(3, 4, 4, 3)).astype("float32")
    target = rng.normal(size=(3, 4, 4, 3)).astype("float32")
    diffs = (pred.astype(np.float64) - target).ravel()
    expected = sum(d * d for d in diffs) / diffs.size
    bad = [(np.zeros((3, 4, 4, 3), "float32"), np.zeros((3, 8, 8, 3), "float32"))]
    run_loss_test(reconstruction_mse, (pred, target), expected=expected, bad_args=bad)


# --- parameter regression --------------------------------------------------------------------
SPECS = [
    ParamSpec("crop", (2,), "continuous", 0.0, 1.0),
    ParamSpec("flip", (1,), "binary", 0, 1),
    ParamSpec("order", (2,), "categorical", 0, 2, "int32"),
]


def _param_batch():
    pred = {
        "crop": np.array([[0.5, -1.0], [0.0, 0.2], [-0.3, 1.0]], "float32"),
        "flip": np.array([[2.0], [-1.0], [0.5]], "float32"),  # logits
        "order": np.array([[[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]],
                           [[0.5, 2.0, 0.0], [1.0, -1.0, 0.5]],
                           [[0.0, 0.0, 3.0], [2.0, 1.0, 0.0]]], "float32"),  # (B, 2, C=3) logits
    }  # fmt: skip
    target = {
        "crop": np.array([[0.2, 0.9], [0.4, 0.3], [0.9, 0.6]], "float32"),
        "flip": np.array([[1.0], [0.0], [1.0]], "float32"),
        "order": np.array([[0, 2], [1, 0], [2, 1]], "int32"),
    }
    return pred, target


def _param_regression_by_hand(pred, target, weights):
    t = target["crop"].astype(np.float64)
    t_std = (t - t.mean(0)) / np.sqrt(t.var(0) + 1e-5)
    crop = np.mean((pred["crop"] - t_std) ** 2)
    x, y = pred["flip"].ravel().astype(np.float64), target["flip"].ravel()
    sig = 1 / (1 + np.exp(-x))
    flip = np.mean(-(y * np.log(sig) + (1 - y) * np.log(1 - sig)))
    ce = []
    for b in range(3):
        for j in range(2):
            logits = pred["order"][b, j].astype(np.float64)
            ce.append(-(logits[target["order"][b, j]] - np.log(np.exp(logits).sum())))
    out = {"crop": crop, "flip": flip, "order": np.mean(ce)}
    out["total"] = sum(weights.get(k, 1.0) * v for k, v in out.items())
    return out


@pytest.mark.parametrize("weights", [{}, {"crop": 0.5, "order": 2.0}], ids=["unweighted", "weighted"])
def test_parameter_regression_each_kind_by_hand(weights):
    pred, target = _param_batch()
    expected = _param_regression_by_hand(pred, target, weights)
    bad_pred = dict(pred, order=pred["order"][:, :, :2])  # 2 classes where the spec says 3
    run_loss_test(
        parameter_regression, (pred, target), {"specs": SPECS, "weights": weights}, expected=expected,
        grad_args=(0,), no_grad_args=(1,), bad_args=[(bad_pred, target)], bad_match=r"pred\['order'\]",
    )  # fmt: skip


def test_parameter_regression_flat_predictions_and_unstandardised_targets():
    pred, target = _param_batch()
    flat = {k: v.reshape(3, -1) for k, v in pred.items()}
    a = parameter_regression(flat, target, SPECS)
    b = parameter_regression(pred, target, SPECS)
    np.testing.assert_allclose([float(a[k]) for k in a], [float(b[k]) for k in a], rtol=1e-6)
    raw = parameter_regression({"crop": pred["crop"]}, target, SPECS, standardize=False)
    assert float(raw["crop"]) == pytest.approx(np.mean((pred["crop"] - target["crop"]) ** 2), rel=1e-6)
    assert sorted(raw) == ["crop", "total"]


def test_parameter_regression_constant_target_is_finite():
    spec = [ParamSpec("blur", (1,), "continuous", 0.1, 2.0)]
    out = parameter_regression({"blur": np.ones((4, 1), "float32")}, {"blur": np.full((4, 1), 0.7, "float32")}, spec)
    assert float(out["blur"]) == pytest.approx(1.0)  # standardised constant target is 0


def test_parameter_regression_bad_keys():
    pred, target = _param_batch()
    with pytest.raises(ValueError, match=r"\['rot'\]"):
        parameter_regression({"rot": pred["crop"]}, target, SPECS)
    with pytest.raises(ValueError, match="batch sizes"):
        parameter_regression({"crop": pred["crop"][:2]}, target, SPECS)
    with pytest.raises(ValueError, match="weights for keys"):
        parameter_regression(pred, target, SPECS, weights={"blur": 1.0})


# --- BYOL target network ---------------------------------------------------------------------
def test_byol_momentum_schedule():
    base, total = 0.99, 100
    for k in (0, 25, 50, 100, 150):
        expected = 1 - (1 - base) * (math.cos(math.pi * min(k, total) / total) + 1) / 2
        assert float(byol_momentum(k, total, base)) == pytest.approx(expected, abs=1e-7)
    assert float(byol_momentum(tf.constant(50), tf.constant(100), base)) == pytest.approx(0.995, abs=1e-7)
    with pytest.raises(ValueError, match="total_steps=0"):
        byol_momentum(1, 0)


def test_ema_update_by_hand():
    import keras

    target, online = keras.layers.Dense(2), keras.layers.Dense(2)
    target.build((None, 3))
    online.build((None, 3))
    t0 = [w.copy() for w in target.get_weights()]
    o0 = online.get_weights()
    ema_update(target.weights, online.weights, 0.9)
    for t, a, b in zip(target.get_weights(), t0, o0):
        np.testing.assert_allclose(t, 0.9 * a + 0.1 * b, atol=1e-7)
    with pytest.raises(ValueError, match=r"target shape \(3, 2\) but online shape \(3, 4\)"):
        wide = keras.layers.Dense(4)
        wide.build((None, 3))
        ema_update(target.weights, wide.weights, 0.9)
