"""E-SSL's rotation prediction and SIE's hypernetwork objective: hand computations in NumPy (inference
mode), gradients, batch and config errors, and the `PairModel` contract (`run_pair_model_test`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from method_helpers import (
    assert_outputs_equal,
    make_pair_model,
    random_pair_batch,
    run_pair_model_test,
    simclr_specs,
)
from nn_helpers import numpy_mlp

from keras_eqssl.default_config import get_config
from keras_eqssl.methods.objectives.base import OBJECTIVES
from keras_eqssl.methods.objectives.essl import ESSL, ROTATION_VIEWS
from keras_eqssl.methods.objectives.sie import SIE

CROP = 8  # side of the rotated crops (the pair's views are 16 px)


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _essl_batch(batch=8, seed=0, labels="recorded", **kwargs) -> dict:
    """A pair batch plus views rot0..rot3: one random 8 px crop per image in its four rotations,
    with params rot{k}["rot90"] = k (`labels="recorded"`) or no params for them (`"absent"`)."""
    out = random_pair_batch(batch=batch, seed=seed, **kwargs)
    crop = np.random.default_rng(seed + 7).random((batch, CROP, CROP, 3)).astype("float32")
    for k, view in enumerate(ROTATION_VIEWS):
        out["views"][view] = np.ascontiguousarray(np.rot90(crop, k, axes=(1, 2)))
        if labels == "recorded":
            out.setdefault("params", {})[view] = {"rot90": np.full((batch, 1), k, "int32")}
    return out


def _quaternions(batch, seed=0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(batch, 4))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype("float32")


def _objective_grads(model, objective, batch):
    """Gradients of the objective's total alone, for the backbone's and the objective's weights."""
    with tf.GradientTape() as tape:
        out = objective(model.pair_outputs(batch, training=True), training=True)
    variables = model.backbone.trainable_weights + objective.trainable_weights
    grads = tape.gradient(out["total"], variables)
    n = len(model.backbone.trainable_weights)
    nonzero = [g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads]
    return nonzero[:n], nonzero[n:]


def test_registered_with_config_sections():
    assert OBJECTIVES["essl"] is ESSL and OBJECTIVES["sie"] is SIE
    assert ESSL.config_section() == {"enabled": False, "weight": 0.4, "hidden_units": "512-512", "features": "all"}
    assert SIE.config_section() == {
        "enabled": False,
        "weight": 1.0,
        "equi_factor": 0.45,
        "sim_weight": 10.0,
        "std_weight": 10.0,
        "cov_weight": 1.0,
        "pred_std_weight": 10.0,
        "projector_units": "512-512-512",
    }
    cfg = get_config()
    assert ESSL.from_config_section(cfg.model.essl, cfg, synchronized=True).get_config()["hidden_units"] == [512, 512]


# --- E-SSL -------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", ["recorded", "absent"])
def test_essl_matches_numpy(labels):
    """The 4B logits line up with each crop's rotation: CE and accuracy equal NumPy's (inference)."""
    essl = ESSL(hidden_units=[8, 8])
    model = make_pair_model("vicreg", objectives=[essl], split=(8, 8))
    batch = _essl_batch(batch=4, labels=labels, specs={})
    _, terms = model.compute_pair_losses(batch, training=False)

    logits, targets = [], []
    for k, view in enumerate(ROTATION_VIEWS):  # encoded one rotation at a time (BN moving stats)
        features = model(batch["views"][view], training=False)["embedding"]
        logits.append(numpy_mlp(essl.head, features))
        targets.append(np.full(4, k))
    logits, targets = np.concatenate(logits), np.concatenate(targets)
    ce = -_log_softmax(logits)[np.arange(16), targets].mean()
    accuracy = (logits.argmax(axis=1) == targets).mean()
    np.testing.assert_allclose(float(terms["essl"]), ce, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(terms["essl_accuracy"]), accuracy, atol=1e-7)


def test_essl_reads_recorded_labels():
    """With recorded labels other than k, the loss uses them (a permutation changes the value)."""
    essl = ESSL(hidden_units=[8])
    model = make_pair_model("vicreg", objectives=[essl], split=(8, 8))
    batch = _essl_batch(batch=4, specs={})
    shifted = {**batch, "params": {v: {"rot90": (p["rot90"] + 1) % 4} for v, p in batch["params"].items()}}
    logits, _ = essl.logits(model.pair_outputs(batch, training=False))
    expected = -_log_softmax(np.asarray(logits, np.float64))[np.arange(16), np.repeat(np.arange(4), 4)]
    shifted_expected = -_log_softmax(np.asarray(logits, np.float64))[np.arange(16), np.repeat(np.arange(1, 5) % 4, 4)]
    _, terms = model.compute_pair_losses(batch, training=False)
    _, shifted_terms = model.compute_pair_losses(shifted, training=False)
    np.testing.assert_allclose(float(terms["essl"]), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(shifted_terms["essl"]), shifted_expected.mean(), rtol=1e-5)


def test_essl_gradients_reach_backbone_and_head():
    essl = ESSL(hidden_units=[8])
    model = make_pair_model("vicreg", objectives=[essl], split=(8, 8))
    backbone, head = _objective_grads(model, essl, _essl_batch(batch=4, specs={}))
    assert all(head), head
    assert sum(backbone) > len(backbone) // 2, backbone


def test_essl_errors():
    essl = ESSL(hidden_units=[8])
    model = make_pair_model("vicreg", objectives=[essl], split=(8, 8))
    with pytest.raises(ValueError, match=r"need views \['rot0', 'rot1', 'rot2', 'rot3'\]"):  # PairModel's check
        model.compute_pair_losses(random_pair_batch(batch=4), training=False)
    pair = {"features": {"v1": np.zeros((4, 16), "float32")}, "batch": {}}
    with pytest.raises(ValueError, match=r"no views \['rot0', 'rot1', 'rot2', 'rot3'\].*policy=\"essl\""):
        essl(pair)
    # training hands PairModel the pair's specs only: a model with them still builds
    make_pair_model("vicreg", objectives=[ESSL(hidden_units=[8])], param_specs=simclr_specs())
    with pytest.raises(ValueError, match="features"):
        ESSL(features="invariant")

    cfg = get_config()
    cfg.augment.policy = "simclr"
    (problem,) = ESSL.config_problems(cfg)
    assert 'config.augment.policy="essl"' in problem and "'simclr'" in problem
    cfg.augment.policy = "essl"
    assert ESSL.config_problems(cfg) == []


def test_essl_pair_model_contract(tmp_path):
    model = make_pair_model("vicreg", objectives=[ESSL(hidden_units=[8])], split=(8, 8))
    run_pair_model_test(model, _essl_batch(batch=8), tmp_path)


# --- SIE ---------------------------------------------------------------------------------------
def _variance(z, eps=1e-4):
    return np.maximum(0.0, 1.0 - np.sqrt(z.var(axis=0, ddof=1) + eps)).mean()


def _covariance(z):
    c = np.cov(z, rowvar=False)
    return ((c**2).sum() - (np.diag(c) ** 2).sum()) / z.shape[1]


def test_sie_matches_numpy():
    """The hypernetwork's W(q) z1, the MSE to z2 and the regularisers equal NumPy's (inference)."""
    sie = SIE(projector_units=[8, 6], std_weight=3.0, cov_weight=0.5, pred_std_weight=2.0)
    model = make_pair_model("vicreg", objectives=[sie], split=(8, 8))
    q = _quaternions(6)
    batch = random_pair_batch(batch=6, specs={}, rel_rotation=q)
    _, terms = model.compute_pair_losses(batch, training=False)

    h1, h2 = (model(batch["views"][v], training=False)["equivariant"] for v in ("v1", "v2"))
    z1, z2 = numpy_mlp(sie.projector, h1), numpy_mlp(sie.projector, h2)
    kernel = np.asarray(sie.hypernetwork.weights_from_code.kernel, np.float64)  # (4, 36)
    assert kernel.shape == (4, 36)
    w = (q.astype(np.float64) @ kernel).reshape(6, 6, 6)  # W(q_b)[i, j]: row i = output
    z2_hat = np.einsum("bij,bj->bi", w, z1)
    mse = ((z2_hat - z2) ** 2).mean()
    std = (_variance(z1) + _variance(z2)) / 2
    cov = _covariance(z1) + _covariance(z2)
    pred_std = _variance(z2_hat) / 2
    total = 0.45 * 10.0 * mse + 3.0 * std + 2.0 * pred_std + 0.5 * cov
    for name, value in dict(sie_mse=mse, sie_std=std, sie_cov=cov, sie_pred_std=pred_std, sie=total).items():
        np.testing.assert_allclose(float(terms[name]), value, rtol=1e-4, atol=1e-6, err_msg=name)


def test_sie_gradients_reach_backbone():
    sie = SIE(projector_units=[8, 6])
    model = make_pair_model("vicreg", objectives=[sie], split=(8, 8))
    batch = random_pair_batch(batch=4, specs={}, rel_rotation=_quaternions(4))
    backbone, heads = _objective_grads(model, sie, batch)
    assert all(heads), heads
    assert sum(backbone) > len(backbone) // 2, backbone


def test_sie_errors():
    model = make_pair_model("vicreg", objectives=[SIE(projector_units=[8])], split=(8, 8))
    with pytest.raises(ValueError, match="rel_rotation.*threedie"):
        model.compute_pair_losses(random_pair_batch(batch=4), training=False)
    with pytest.raises(ValueError, match="pred_std_weight"):
        SIE(pred_std_weight=-1.0)

    cfg = get_config()
    assert cfg.data.source == "threedie" and tuple(cfg.model.split) != (0, 0)
    (rotation,) = SIE.config_problems(cfg)  # the default renders get an in-plane rotation rel_rotation lacks
    assert "config.data.threedie.rotation=0" in rotation
    cfg.data.threedie.rotation = 0.0
    assert SIE.config_problems(cfg) == []
    cfg.data.threedie.augment_renders = True
    cfg.data.source = "skimage_photos"
    cfg.model.split = (0, 0)
    source, augment, split = SIE.config_problems(cfg)
    assert "config.data.source='threedie'" in source and "'skimage_photos'" in source
    assert "config.data.threedie.augment_renders=False" in augment
    assert "config.model.split" in split


def test_sie_pair_model_contract(tmp_path):
    """The contract, with saving checked here and `evaluate` compared to float32 rounding.

    The helper compares `evaluate` bit for bit. With SIE that failed in about 1 run in 10 on a
    1-ulp difference of `loss` alone, with every term equal. The same difference appears between
    repeated `evaluate` calls of one model, in some processes; the cause was not found."""
    model = make_pair_model("vicreg", objectives=[SIE(projector_units=[16, 8])], split=(8, 8))
    batch = random_pair_batch(batch=8, rel_rotation=_quaternions(8))
    run_pair_model_test(model, batch, tmp_path, check_saving=False)

    path = str(tmp_path / "sie.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [o.get_config() for o in loaded.objectives] == [o.get_config() for o in model.objectives]
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    images = batch["views"]["v1"]
    assert_outputs_equal(model(images, training=False), loaded(images, training=False))
    results = model.evaluate(batch, batch_size=4, verbose=0, return_dict=True)
    reloaded = loaded.evaluate(batch, batch_size=4, verbose=0, return_dict=True)
    assert sorted(results) == sorted(reloaded)
    for key, value in results.items():
        np.testing.assert_allclose(reloaded[key], value, rtol=1e-6, err_msg=key)
