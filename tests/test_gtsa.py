"""GTSAModel: the geometry of its crop loss, its contract as a Keras model, and 2 replicas = 1 device."""

from __future__ import annotations

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from objective_helpers import check_two_replicas

from keras_eqssl.augment.geometric import rot90
from keras_eqssl.augment.policies import MultiCropPolicy
from keras_eqssl.losses.roi_cosine import roi_cosine
from keras_eqssl.methods import GTSAModel, ScheduledAdamW
from keras_eqssl.nn import VIT_PRESETS, VisionTransformer
from keras_eqssl.nn.roi_align import roi_align

NUM_LOCAL, GLOBAL, LOCAL = 2, 32, 16
DINO = dict(crop_weight=0.0, correspondence_weight=0.0, rotation_weight=0.0, dino_weight=1.0, dino_units=64,
            dino_hidden_units=32, dino_bottleneck_units=16)  # fmt: skip


# --- geometry: the rotated teacher RoI is the student RoI ----------------------------------
def _linear_views(policy, params, image_side: int) -> dict:
    """Each view as a rotation-equivariant 'encoder' would see it: f(y, x) at its pixels' image positions.

    f is linear (3 channels: y, x, y + 2x), so bilinear RoIAlign inside a map is exact; the view
    pixel (i, j) of a crop (y0, x0, h, w) (image-normalised) sits at y0 + (i + 1/2) h / n.
    """
    views = {}
    for v in policy.view_names():
        crop = params[v]["crop"].numpy()  # (B, 4) y0, x0, h, w
        n = GLOBAL if v.startswith("g") else LOCAL
        t = (np.arange(n) + 0.5) / n
        y = crop[:, 0, None, None] + t[None, :, None] * crop[:, 2, None, None]
        x = crop[:, 1, None, None] + t[None, None, :] * crop[:, 3, None, None]
        y, x = np.broadcast_arrays(y, x)
        image = np.stack([y, x, (y + 2 * x) / 3], axis=-1).astype("float32")
        views[v] = rot90(image, params[v]["rot90"]).numpy()
    return views


def test_rotated_teacher_roi_equals_student_roi_for_all_16_angle_pairs():
    policy = MultiCropPolicy(global_size=GLOBAL, local_size=LOCAL, num_local=4, jitter_p=0, grayscale_p=0, blur_p=0)
    _, params = policy(np.zeros((48, 64, 64, 3), "float32"), seed=3)
    views = _linear_views(policy, params, 64)
    names = policy.view_names()
    worst, wrong, seen = {}, [], set()
    for q in ("g1", "g2"):
        for v in names:
            if v == q:
                continue
            k = 4 if v.startswith("g") else 3  # sampling_ratio 1 and k <= map side: no sample is clamped
            teacher = roi_align(views[q], params[q]["overlap"][:, names.index(v)], k, sampling_ratio=1)
            student = roi_align(views[v], params[v]["overlap"][:, names.index(q)], k, sampling_ratio=1)
            rq, rv = params[q]["rot90"].numpy()[:, 0], params[v]["rot90"].numpy()[:, 0]
            turned = rot90(teacher, rv - rq).numpy()
            err = np.abs(turned - student.numpy()).max(axis=(1, 2, 3))
            off = np.abs(rot90(teacher, rv - rq + 1).numpy() - student.numpy()).max(axis=(1, 2, 3))
            valid = params[v]["overlap_valid"].numpy()[:, names.index(q)] > 0
            # bins of at least a pixel: a sample closer than half a pixel to the map's edge is clamped
            for box, side in (
                (params[q]["overlap"][:, names.index(v)], GLOBAL),
                (params[v]["overlap"][:, names.index(q)], views[v].shape[1]),
            ):
                extent = (box[:, 2:] - box[:, :2]).numpy() * side
                valid &= extent.min(axis=1) >= k
            for b in np.flatnonzero(valid):
                pair = (int(rq[b]), int(rv[b]))
                seen.add(pair)
                worst[pair] = max(worst.get(pair, 0.0), float(err[b]))
                wrong.append(float(off[b]))
    assert len(seen) == 16, f"angle pairs covered: {sorted(seen)}"
    assert max(worst.values()) < 1e-5, worst
    # the check can fail: a quarter turn too many moves the grid by far more than the tolerance
    assert np.median(wrong) > 1e-2, np.median(wrong)


def test_roi_cosine_is_minus_one_for_matching_rois_and_ignores_invalid_examples():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(3, 4, 4, 8)).astype("float32")
    student = np.stack([np.rot90(teacher[i], k, axes=(0, 1)) for i, k in enumerate((1, 2, 3))])
    boxes = np.tile(np.array([[0.0, 0.0, 1.0, 1.0]], "float32"), (3, 1))
    turns = np.array([1, 2, 3])
    assert float(roi_cosine(student, teacher, boxes, boxes, turns, output_size=4, sampling_ratio=1)) == pytest.approx(
        -1.0, abs=1e-6
    )
    noise = student.copy()
    noise[2] = rng.normal(size=noise[2].shape)
    valid = np.array([1.0, 1.0, 0.0])
    out = roi_cosine(noise, teacher, boxes, boxes, turns, valid=valid, output_size=4, sampling_ratio=1)
    assert float(out) == pytest.approx(-1.0, abs=1e-6)  # the noisy example is not valid
    assert float(roi_cosine(noise, teacher, boxes, boxes, turns, output_size=4, sampling_ratio=1)) > -0.9
    assert float(roi_cosine(noise, teacher, boxes, boxes, turns, valid=np.zeros(3), output_size=4)) == 0.0


# --- the model ----------------------------------------------------------------------------
def make_gtsa(**kwargs) -> GTSAModel:
    """Tiny GTSA (module-level: the 2-replica subprocess imports it); teacher momentum 0.5 so the EMA shows."""
    args = dict(num_local=NUM_LOCAL, image_size=GLOBAL, local_size=LOCAL, teacher_base_momentum=0.5)
    return GTSAModel(VisionTransformer(**VIT_PRESETS["vit_tiny"]), **{**args, **kwargs})


def make_dino() -> GTSAModel:
    return make_gtsa(**DINO)


def multicrop_batch(batch: int, size: int = GLOBAL, seed: int = 0) -> dict:
    """A `MultiCropPolicy` batch of random images as NumPy (`size` is the global view side)."""
    policy = MultiCropPolicy(global_size=size, local_size=LOCAL, num_local=NUM_LOCAL)
    images = np.random.default_rng(seed).random((batch, 48, 48, 3)).astype("float32")
    views, params = policy(images, seed=seed)
    return tf.nest.map_structure(lambda t: t.numpy(), {"views": views, "params": params})


@pytest.mark.parametrize(
    "make, terms",
    [(make_gtsa, ["correspondence", "crop", "rotation", "rotation_accuracy"]), (make_dino, ["dino"])],
    ids=["gtsa", "dino_baseline"],
)
def test_gtsa_model_contract(make, terms, tmp_path):
    model = make()
    batch = multicrop_batch(8)
    assert sorted(model.term_names()) == terms
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    teacher_before = [np.array(w) for w in model.teacher_backbone.weights]
    student_before = [np.array(w) for w in model.backbone.trainable_weights]
    history = model.fit(batch, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert sorted(history) == sorted([*terms, "loss"])
    assert all(np.isfinite(v[0]) for v in history.values()), history
    assert int(model.optimizer.iterations) == 2
    moved = lambda a, b: any(not np.array_equal(x, np.array(y)) for x, y in zip(a, b))  # noqa: E731
    assert moved(student_before, model.backbone.trainable_weights)
    assert moved(teacher_before, model.teacher_backbone.weights), "the EMA teacher did not move"
    # the optimizer never touches the teacher: it moves only by the EMA
    online = {id(v) for v in model.online_variables()}
    assert not any(id(w) in online for t, _ in model.ema_pairs() for w in t.weights)

    # the representation: mean patch tokens, for every key export serves
    out = model(batch["views"]["g1"])
    tokens = model.backbone(model.normalize(batch["views"]["g1"]))["tokens"]
    np.testing.assert_allclose(out["embedding"], np.mean(tokens, axis=1), atol=1e-6)
    assert sorted(out) == ["embedding", "equivariant", "invariant"]

    # saving: same weights, outputs and evaluation after load_model; config round trip
    path = str(tmp_path / "gtsa.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, GTSAModel)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    np.testing.assert_array_equal(loaded(batch["views"]["l1"])["embedding"], model(batch["views"]["l1"])["embedding"])
    ev = model.evaluate(batch, batch_size=8, verbose=0, return_dict=True)
    ev_loaded = loaded.evaluate(batch, batch_size=8, verbose=0, return_dict=True)
    for k in ev:
        assert ev_loaded[k] == pytest.approx(ev[k], rel=1e-6), (k, ev, ev_loaded)
    assert GTSAModel.from_config(model.get_config()).get_config() == model.get_config()


def test_gradients_reach_every_student_variable_and_no_teacher_variable():
    model = make_gtsa()
    batch = tf.nest.map_structure(tf.convert_to_tensor, multicrop_batch(4))
    variables = model.online_variables()
    teacher = [w for t, _ in model.ema_pairs() for w in t.trainable_weights]
    with tf.GradientTape(persistent=True) as tape:
        total, _ = model.compute_losses(batch, training=True)
    grads = tape.gradient(total, variables)
    dead = [v.path for v, g in zip(variables, grads) if g is None or not np.any(np.asarray(g))]
    assert not dead, dead
    assert all(g is None for g in tape.gradient(total, teacher))


def test_each_loss_is_its_own_term_and_the_total_weighs_them():
    model = make_gtsa(crop_weight=0.7, correspondence_weight=0.3, rotation_weight=0.2)
    total, terms = model.compute_losses(tf.nest.map_structure(tf.convert_to_tensor, multicrop_batch(4)))
    expected = 0.7 * terms["crop"] + 0.3 * terms["correspondence"] + 0.2 * terms["rotation"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert -1.0 <= float(terms["crop"]) <= 1.0 and -1.0 <= float(terms["correspondence"]) <= 1.0


def test_correspondence_loss_waits_for_the_warm_up():
    model = make_gtsa(crop_weight=0.0, rotation_weight=0.0, correspondence_warmup_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    batch = multicrop_batch(4)
    history = model.fit(batch, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    assert history["loss"][:2] == [0.0, 0.0], history  # steps 0 and 1: weight 0
    assert history["loss"][2] == pytest.approx(0.5 * history["correspondence"][2], rel=1e-6)


def test_bad_batches_and_arguments_are_named():
    model = make_gtsa()
    batch = multicrop_batch(4)
    del batch["views"]["l2"]
    with pytest.raises(ValueError, match=r"lacks \['l2'\].*policy=\"gtsa\""):
        model.compute_losses(batch)
    batch = multicrop_batch(4)
    del batch["params"]["g2"]["overlap"]
    with pytest.raises(ValueError, match="params\\['g2'\\]\\['overlap'\\]"):
        model.compute_losses(batch)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        make_gtsa(crop_weight=0, correspondence_weight=0, rotation_weight=0)
    with pytest.raises(ValueError, match="patch grids"):
        make_gtsa(local_size=4)


def test_weight_decay_skips_biases_and_norms():
    """ScheduledAdamW(matrices_only=True) decays exactly the kernels and embeddings of a GTSA model."""
    model = make_gtsa()
    opt = ScheduledAdamW(0.1, weight_decay=0.5, weight_decay_end=1.0, decay_steps=4, matrices_only=True)
    model.compile(optimizer=opt)
    variables = model.online_variables()
    decayed = {v.path for v in variables if opt.decays(v)}
    for v in variables:
        is_weight = len(v.shape) >= 2 and v.name != "bias"  # Keras's attention biases are (heads, head_dim)
        assert (v.path in decayed) == is_weight, (v.path, v.shape)
    names = " ".join(sorted(decayed))
    assert "bias" not in names and "gamma" not in names and "beta" not in names, names
    assert any("position" in n or "class_token" in n for n in decayed), "position embedding / CLS not decayed"
    # one step with zero gradients: matrices shrink by lr * wd(0), the rest stays
    before = [np.array(v) for v in variables]
    opt.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    for v, b in zip(variables, before):
        expected = b * (1 - 0.1 * 0.5) if v.path in decayed else b
        np.testing.assert_allclose(np.array(v), expected, rtol=1e-6, atol=1e-7, err_msg=v.path)
    assert float(opt.weight_decay_at(2)) == pytest.approx(0.75)


def _layer_norm(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    from math import erf

    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def test_rotation_head_is_gtsas_rot_predictor():
    """[Linear-LN-GELU] x 2, Linear-LN with no GELU, Linear(4): GTSA's rot_predictor, checked in NumPy."""
    model = make_gtsa(rotation_units=(12, 10, 6))
    mlp, logits = model.rotation_head.layers
    x = np.random.default_rng(0).normal(size=(3, 32)).astype("float32")
    h = x
    for i, (dense, norm) in enumerate(zip(mlp.dense_layers, mlp.norm_layers)):
        h = _layer_norm(
            h @ np.asarray(dense.kernel) + np.asarray(dense.bias), np.asarray(norm.gamma), np.asarray(norm.beta)
        )
        h = _gelu(h) if i < 2 else h
    expected = h @ np.asarray(logits.kernel) + np.asarray(logits.bias)
    np.testing.assert_allclose(np.asarray(model.rotation_head(x)), expected, atol=1e-5)
    assert [d.units for d in mlp.dense_layers] == [12, 10, 6] and logits.units == 4
    # PyTorch's default nn.Linear init, as GTSA's rot_predictor: kernel and bias U(+-1/sqrt(fan_in)). The
    # lower bound is checked on kernel and bias together: a 4-entry bias alone stays under half the
    # bound with probability 1/16.
    for dense, fan_in in zip([*mlp.dense_layers, logits], (32, 12, 10, 6)):
        w = np.abs(np.concatenate([np.asarray(dense.kernel).ravel(), np.asarray(dense.bias)]))
        assert w.max() <= fan_in**-0.5 and w.max() > 0.5 * fan_in**-0.5


def test_teacher_momentum_is_gtsas_next_step_momentum():
    """The update after step k uses tau(k + 1): GTSA moves the teacher at the start of step k + 1."""
    model = make_gtsa(total_steps=10, teacher_base_momentum=0.99)
    model.compile(optimizer=ScheduledAdamW(0.1))
    for k in (0, 4, 9):
        model.optimizer.iterations.assign(k)
        expected = 1 - (1 - 0.99) * (np.cos(np.pi * min(k + 1, 10) / 10) + 1) / 2
        assert float(model.teacher_momentum()) == pytest.approx(expected, abs=1e-6)


def test_teacher_runs_without_the_students_drop_path():
    vit = VisionTransformer(**{**VIT_PRESETS["vit_tiny"], "drop_path_rate": 0.1})
    model = GTSAModel(vit, num_local=NUM_LOCAL, image_size=GLOBAL, local_size=LOCAL)
    assert model.backbone.get_layer("block1").drop_path_rate == pytest.approx(0.1)
    assert model.teacher_backbone.drop_path_rate == 0.0
    assert all(model.teacher_backbone.get_layer(f"block{i}").drop_path_rate == 0.0 for i in range(2))
    images = np.random.default_rng(0).random((2, GLOBAL, GLOBAL, 3)).astype("float32")
    first = model.teacher_backbone(images, training=True)["tokens"]
    np.testing.assert_array_equal(first, model.teacher_backbone(images, training=True)["tokens"])


def test_sampling_ratio_takes_torchvisions_adaptive_count():
    assert make_gtsa().sampling_ratio == -1
    assert make_gtsa(sampling_ratio=2).get_config()["sampling_ratio"] == 2
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="sampling_ratio must be an int >= 1 or -1"):
            make_gtsa(sampling_ratio=bad)


@pytest.mark.parametrize("torch_epsilon", [True, False])
def test_scheduled_adamw_step_is_torchs_adamw(torch_epsilon):
    """Three steps against torch.optim.AdamW's update in NumPy (Keras' epsilon placement with torch_epsilon=False)."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") * s for s in (1e-2, 1e-7, 3.0)]
    eps = 1e-8 if torch_epsilon else 1e-7
    opt = ScheduledAdamW(0.01, weight_decay=0.1, weight_decay_end=0.3, decay_steps=4, torch_epsilon=torch_epsilon,
                         epsilon=eps)  # fmt: skip
    w = keras.Variable(w0, name="kernel")
    expected, m, v = w0.astype("float64"), 0.0, 0.0
    for k, g in enumerate(grads):
        opt.apply_gradients([(tf.constant(g), w)])
        wd = 0.3 + (0.1 - 0.3) * (1 + np.cos(np.pi * k / 4)) / 2
        expected = expected * (1 - 0.01 * wd)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g.astype("float64") ** 2
        c1, c2 = 1 - 0.9 ** (k + 1), 1 - 0.999 ** (k + 1)
        if torch_epsilon:
            expected = expected - 0.01 / c1 * m / (np.sqrt(v) / np.sqrt(c2) + eps)
        else:
            expected = expected - 0.01 * np.sqrt(c2) / c1 * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5, atol=1e-7)
    assert ScheduledAdamW.from_config(opt.get_config()).torch_epsilon == torch_epsilon


@pytest.mark.slow
@pytest.mark.parametrize("make", [make_gtsa, make_dino], ids=["gtsa", "dino_baseline"])
def test_one_step_on_two_replicas_equals_one_device(make):
    figures = check_two_replicas(make, multicrop_batch, mode="--model")
    assert figures["target_moved"] > 1e-3, figures
    # the teacher moves by half the step (momentum 0.5): the gradients' tolerance, relative to the largest
    assert figures["target_diff"] < 1e-4 * max(1.0, figures["grad_max"]), figures


def _examples(module: str) -> list:
    import inspect
    import re
    import textwrap

    mod = importlib.import_module(module)
    return [
        pytest.param(textwrap.dedent(code), id=f"{module}.{name}")
        for name, obj in vars(mod).items()
        if inspect.isclass(obj) and obj.__module__ == mod.__name__
        for code in re.findall(r"```python\n(.*?)```", obj.__doc__ or "", re.S)
    ]


@pytest.mark.parametrize("code", _examples("keras_eqssl.methods.ssl_model") + _examples("keras_eqssl.methods.gtsa"))
def test_python_examples_of_the_base_and_gtsa_run(code):
    from test_methods import test_docstring_python_examples_run

    test_docstring_python_examples_run(code)


@pytest.mark.parametrize(
    "module",
    ["keras_eqssl.methods.scheduled_adamw", "keras_eqssl.losses.roi_cosine", "keras_eqssl.losses.rotation_prediction",
     "keras_eqssl.losses.ema"],
)  # fmt: skip
def test_doctests_run(module):
    import doctest

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


def test_config_drop_path_rate_reaches_the_student_not_the_teacher():
    from train_helpers import load_config

    from keras_eqssl.methods.factory import model_from_config

    config = load_config("gtsa")
    config.model.drop_path_rate = 0.1
    model = model_from_config(config)
    assert model.backbone.drop_path_rate == 0.1
    assert model.teacher_backbone.drop_path_rate == 0.0
