"""E-SSL's rotation prediction and SIE's hypernetwork objective: hand computations in NumPy (inference
mode), gradients, batch and config errors, and the `PairModel` contract (`run_pair_model_test`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from method_helpers import (
    EVAL_ATOL,
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
        "joint_regularization": False,
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
    _, terms = model.compute_losses(batch, training=False)

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
    _, terms = model.compute_losses(batch, training=False)
    _, shifted_terms = model.compute_losses(shifted, training=False)
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
        model.compute_losses(random_pair_batch(batch=4), training=False)
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
    _, terms = model.compute_losses(batch, training=False)

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
        model.compute_losses(random_pair_batch(batch=4), training=False)
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
        np.testing.assert_allclose(reloaded[key], value, rtol=1e-6, atol=EVAL_ATOL, err_msg=key)


def test_sie_joint_regularization_matches_numpy():
    """joint_regularization: std and cov of [z_inv, z_equi] (SIE's code), with the cross-covariance; the
    invariance loss projects once and shares its projections; the total is SIE's."""
    from keras_eqssl.methods import VICReg

    keras.utils.set_random_seed(0)  # the same weights whatever ran before in this process
    sie = SIE(projector_units=[8, 6], std_weight=3.0, cov_weight=0.5, pred_std_weight=2.0, joint_regularization=True)
    invariance = VICReg(projector_units=[8, 4], sim_weight=10.0, std_weight=0.0, cov_weight=0.0)
    model = make_pair_model(invariance, objectives=[sie], split=(8, 8))
    q = _quaternions(6)
    batch = random_pair_batch(batch=6, specs={}, rel_rotation=q)
    total, terms = model.compute_losses(batch, training=False)

    rep = [model(batch["views"][v], training=False) for v in ("v1", "v2")]
    zi1, zi2 = (numpy_mlp(invariance.projector, r["invariant"]) for r in rep)
    z1, z2 = (numpy_mlp(sie.projector, r["equivariant"]) for r in rep)
    kernel = np.asarray(sie.hypernetwork.weights_from_code.kernel, np.float64)
    z2_hat = np.einsum("bij,bj->bi", (q.astype(np.float64) @ kernel).reshape(6, 6, 6), z1)
    x, y = np.concatenate([zi1, z1], 1), np.concatenate([zi2, z2], 1)  # (6, 4 + 6)
    std = (_variance(x) + _variance(y)) / 2
    cov = _covariance(x) + _covariance(y)
    per_block = _covariance(z1) + _covariance(z2) + (_covariance(zi1) * 4 + _covariance(zi2) * 4) / 6
    # the inv-equi cross-covariance is in: the joint sum exceeds the per-block sums (relative: the
    # values scale with the random weights, down to 1e-8)
    assert cov * 10 / 6 - per_block > 1e-3 * per_block
    mse, pred_std = ((z2_hat - z2) ** 2).mean(), _variance(z2_hat) / 2
    inv = ((zi1 - zi2) ** 2).mean()
    expected = 10.0 * inv + 0.45 * 10.0 * mse + 3.0 * std + 2.0 * pred_std + 0.5 * cov  # SIE's loss
    for name, value in dict(sie_std=std, sie_cov=cov, sie_mse=mse, sie_pred_std=pred_std, vicreg=10.0 * inv).items():
        np.testing.assert_allclose(float(terms[name]), value, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(float(total), expected, rtol=1e-4)

    # one projection per view: the projector's BatchNorm moves once per view in a training step
    bn = next(
        layer for layer in invariance.projector._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
    )
    before = np.asarray(bn.moving_mean).copy()
    h = [model(batch["views"][v], training=True)["invariant"] for v in ("v1", "v2")]
    model.compute_losses(batch, training=True)
    once = bn.moving_mean.numpy()
    bn.moving_mean.assign(before)
    for v in h:
        invariance.project(v, training=True)
    np.testing.assert_allclose(once, bn.moving_mean.numpy(), rtol=1e-5, atol=1e-6)

    restored = SIE.from_config(sie.get_config())
    assert restored.joint_regularization and restored.uses_invariant_projections
    assert not SIE().uses_invariant_projections


def test_sie_joint_regularization_saves(tmp_path):
    from keras_eqssl.methods import VICReg

    invariance = VICReg(projector_units=[8, 4], sim_weight=10.0, std_weight=0.0, cov_weight=0.0)
    model = make_pair_model(invariance, objectives=[SIE(projector_units=[8, 6], joint_regularization=True)])
    batch = random_pair_batch(batch=6, specs={}, rel_rotation=_quaternions(6))
    path = str(tmp_path / "joint.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.objectives[0].joint_regularization
    (total, terms), (total2, terms2) = (m.compute_losses(batch, training=False) for m in (model, loaded))
    np.testing.assert_allclose(float(total2), float(total), rtol=1e-6)
    np.testing.assert_allclose(float(terms2["sie_cov"]), float(terms["sie_cov"]), rtol=1e-6)


def test_sie_joint_regularization_errors():
    from keras_eqssl.config_validation import validate
    from keras_eqssl.errors import ConfigError

    with pytest.raises(ValueError, match="VICReg"):
        make_pair_model("simclr", objectives=[SIE(projector_units=[8], joint_regularization=True)], split=(8, 8))
    sie = SIE(projector_units=[8], joint_regularization=True)
    pair = {"equivariant": {"v1": np.zeros((4, 8), "float32"), "v2": np.zeros((4, 8), "float32")},
            "batch": {"rel_rotation": _quaternions(4)}}  # fmt: skip
    make_pair_model("vicreg", objectives=[sie], split=(8, 8))  # builds the heads
    with pytest.raises(ValueError, match="invariant_projections"):
        sie(pair)

    cfg = get_config()
    cfg.data.threedie.rotation = 0.0
    cfg.model.sie.update(enabled=True, joint_regularization=True)
    (problem,) = SIE.config_problems(cfg)
    assert "config.model.invariance.vicreg.std_weight=0" in problem and "cov_weight=0" in problem
    with pytest.raises(ConfigError, match="vicreg.std_weight=0"):
        validate(cfg)
    cfg.model.invariance.vicreg.update(std_weight=0.0, cov_weight=0.0)
    assert SIE.config_problems(cfg) == []
    validate(cfg)
    cfg.model.invariance.name = "simclr"
    (problem,) = SIE.config_problems(cfg)
    assert "config.model.invariance.name='vicreg'" in problem


# --- parity with the official code: the pieces the parity tools rely on -------------------------------


def _sie_state_dict(blocks, widths, rng) -> dict:
    """SIE's ResNet names and torch layouts (OIHW, BN weight/bias/running stats), a downsample in every first block."""
    sd = {}

    def conv(key, o, i, k):
        sd[f"{key}.weight"] = rng.normal(size=(o, i, k, k)).astype("float32")

    def bn(key, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{key}.{name}"] = rng.uniform(0.5, 1.5, size=c).astype("float32")
        sd[f"{key}.num_batches_tracked"] = np.array(3, "int64")

    conv("conv1", widths[0], 3, 7)
    bn("bn1", widths[0])
    c_in = widths[0]
    for s, (n, c) in enumerate(zip(blocks, widths)):
        for b in range(n):
            key = f"layer{s + 1}.{b}"
            conv(f"{key}.conv1", c, c_in if b == 0 else c, 3)
            bn(f"{key}.bn1", c)
            conv(f"{key}.conv2", c, c, 3)
            bn(f"{key}.bn2", c)
            if b == 0:
                conv(f"{key}.downsample.0", c, c_in, 1)
                bn(f"{key}.downsample.1", c)
        c_in = c
    return sd


def _keras_name(key: str) -> tuple[str, str]:
    """SIE torch key -> (our layer name, our weight name)."""
    names = {"weight": "kernel", "running_mean": "moving_mean", "running_var": "moving_variance"}
    stem, last = key.rsplit(".", 1)
    if stem in ("conv1", "bn1"):
        layer = {"conv1": "stem_conv", "bn1": "stem_bn"}[stem]
    else:
        stage, block, *rest = stem.split(".")
        layer = f"stack{int(stage[5:]) - 1}_block{block}_"
        layer += {"downsample.0": "shortcut_conv", "downsample.1": "shortcut_bn"}.get(".".join(rest), rest[0])
    is_bn = "bn" in layer
    weight = {"weight": "gamma", "bias": "beta"}.get(last, names.get(last)) if is_bn else names[last]
    return layer, weight


def test_load_resnet_weights_puts_every_sie_tensor_in_its_variable():
    from keras_eqssl.nn import ResNetBackbone, load_resnet_weights

    blocks, widths = [2, 1], [8, 16]
    sd = _sie_state_dict(blocks, widths, np.random.default_rng(0))
    backbone = ResNetBackbone(blocks, stem="sie", width=0.125, stackwise_num_filters=[64, 128])
    report = load_resnet_weights(backbone, {f"module.backbone.{k}": v for k, v in sd.items()}, "module.backbone.")
    assert not report.unused and len(report.loaded) == len(sd)
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            continue
        layer, weight = _keras_name(key)
        ours = np.asarray(getattr(backbone.get_layer(layer), weight))
        expected = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value  # OIHW -> HWIO
        np.testing.assert_array_equal(ours, expected, err_msg=key)
    assert len(backbone.weights) == sum(1 for k in sd if not k.endswith("num_batches_tracked"))


def test_load_resnet_weights_refuses_a_checkpoint_of_another_layout():
    from keras_eqssl.nn import ResNetBackbone, load_resnet_weights

    sd = _sie_state_dict([1, 1], [8, 16], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"conv1\.weight: shape"):  # SIE's 7x7 stem into a 3x3 one
        load_resnet_weights(ResNetBackbone([1, 1], stem="cifar", width=0.125), sd)
    with pytest.raises(ValueError, match=r"layer1\.0: the state dict has a projection shortcut"):
        load_resnet_weights(ResNetBackbone([1, 1], stem="imagenet", width=0.125), sd)
    torchvision_like = {k: v for k, v in sd.items() if not k.startswith("layer1.0.downsample")}
    backbone = ResNetBackbone([1, 1], stem="sie", width=0.125, stackwise_num_filters=[64, 128])
    with pytest.raises(ValueError, match=r"layer1\.0: the state dict lacks a projection shortcut"):
        load_resnet_weights(backbone, torchvision_like)


def test_sie_stem_pads_like_sie_on_odd_sizes():
    """SIE pads its 7x7/2 conv by (2, 3) whatever the size: 65 px -> 32 -> pool 16 -> 8 -> 4 -> 2 (Keras' 'same'
    would give 33 -> 17 -> 9 -> 5 -> 3). The stem's output is checked against a NumPy convolution."""
    from keras_eqssl.nn import ResNetBackbone

    backbone = ResNetBackbone([1, 1, 1, 1], stem="sie", width=0.0625)
    x = np.random.default_rng(0).normal(size=(1, 65, 65, 3)).astype("float32")
    assert tuple(backbone(x)["feature_map"].shape) == (1, 2, 2, 32)
    conv = backbone.get_layer("stem_conv")
    stem = keras.Model(backbone.input, conv.output)
    padded = np.pad(x, ((0, 0), (2, 3), (2, 3), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7), axis=(1, 2))[:, ::2, ::2]
    expected = np.einsum("nhwcij,ijco->nhwo", windows, np.asarray(conv.kernel))
    np.testing.assert_allclose(np.asarray(stem(x)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("chain", [False, True])
def test_rotated_crop_policy_rotates_counter_clockwise_and_chains(chain):
    """rot{k} = np.rot90(rot0, k) (E-SSL's rotate_images: flip(3).transpose(2, 3) for k = 1, counter-clockwise);
    with `chain` the crop also records the flip / colour / grayscale draws that all four rotations share."""
    from keras_eqssl.augment.policies import RotatedCropPolicy
    from keras_eqssl.augment.policies.pairs import simclr

    kwargs = dict(chain=dict(flip_p=0.5, jitter_p=0.8, grayscale_p=0.2, blur_p=0.0)) if chain else {}
    policy = RotatedCropPolicy(simclr(16), size=8, scale=(0.2, 1.0), **kwargs)
    images = (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype("uint8")
    views, params = policy(images, seed=3)
    for k in range(4):
        np.testing.assert_array_equal(np.asarray(views[f"rot{k}"]), np.rot90(np.asarray(views["rot0"]), k, axes=(1, 2)))
        np.testing.assert_array_equal(np.asarray(params[f"rot{k}"]["rot90"]), np.full((4, 1), k))
    assert ("color" in params["rot0"]) == chain and "crop" in params["rot0"]
    assert sorted(params["rot0"]) == sorted(s.key for s in policy.param_specs()["rot0"])
    assert policy.get_config()["chain"] == kwargs.get("chain")


def test_essl_chain_from_config():
    from keras_eqssl.augment.policies.factory import policy_from_config

    config = get_config()
    config.augment.policy = "essl"
    config.augment.essl.update(dict(size=8, scale=(0.2, 1.0), chain=True))
    policy = policy_from_config(config.augment)
    assert policy.get_config()["chain"]["blur_p"] == 0.0
    assert {"crop", "flip", "color", "grayscale", "rot90"} <= {s.key for s in policy.param_specs()["rot3"]}
