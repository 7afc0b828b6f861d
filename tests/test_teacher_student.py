"""TeacherStudentModel with GTSA's and DINO's parts: the geometry of the crop loss, the contract as a Keras model,
the parts' registry and config, and 2 replicas = 1 device."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from objective_helpers import check_two_replicas

from keras_eqssl.augment.geometric import rot90
from keras_eqssl.augment.policies import MultiCropPolicy
from keras_eqssl.losses.roi_cosine import roi_cosine
from keras_eqssl.methods import (
    TERMS,
    CorrespondenceTerm,
    CropTerm,
    DINOTerm,
    RotationTerm,
    ScheduledAdamW,
    TeacherStudentModel,
    TeacherStudentTerm,
)
from keras_eqssl.nn import VIT_PRESETS, VisionTransformer
from keras_eqssl.nn.roi_align import roi_align

NUM_LOCAL, GLOBAL, LOCAL = 2, 32, 16
TINY_DINO = dict(units=64, hidden_units=32, bottleneck_units=16)


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
def gtsa_parts() -> list:
    """GTSA's parts at their default weights: crop 1, correspondence 0.5, rotation 0.5."""
    return [CropTerm(), CorrespondenceTerm(), RotationTerm()]


def make_gtsa(parts=None, **kwargs) -> TeacherStudentModel:
    """Tiny GTSA (module-level: the 2-replica subprocess imports it); teacher momentum 0.5 so the EMA shows."""
    args = dict(num_local=NUM_LOCAL, image_size=GLOBAL, local_size=LOCAL, teacher_base_momentum=0.5)
    vit = VisionTransformer(**VIT_PRESETS["vit_tiny"])
    return TeacherStudentModel(vit, gtsa_parts() if parts is None else parts, **{**args, **kwargs})


def make_dino() -> TeacherStudentModel:
    return make_gtsa([DINOTerm(**TINY_DINO)])


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
def test_teacher_student_model_contract(make, terms, tmp_path):
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
    assert isinstance(loaded, TeacherStudentModel)
    assert [type(p) for p in loaded.parts] == [type(p) for p in model.parts]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    np.testing.assert_array_equal(loaded(batch["views"]["l1"])["embedding"], model(batch["views"]["l1"])["embedding"])
    ev = model.evaluate(batch, batch_size=8, verbose=0, return_dict=True)
    ev_loaded = loaded.evaluate(batch, batch_size=8, verbose=0, return_dict=True)
    for k in ev:
        assert ev_loaded[k] == pytest.approx(ev[k], rel=1e-6), (k, ev, ev_loaded)
    assert TeacherStudentModel.from_config(model.get_config()).get_config() == model.get_config()


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
    model = make_gtsa([CropTerm(0.7), CorrespondenceTerm(0.3), RotationTerm(0.2)])
    total, terms = model.compute_losses(tf.nest.map_structure(tf.convert_to_tensor, multicrop_batch(4)))
    expected = 0.7 * terms["crop"] + 0.3 * terms["correspondence"] + 0.2 * terms["rotation"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert -1.0 <= float(terms["crop"]) <= 1.0 and -1.0 <= float(terms["correspondence"]) <= 1.0


def test_correspondence_loss_waits_for_the_warm_up():
    model = make_gtsa([CorrespondenceTerm(warmup_steps=2)])
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
    for parts in ([], [CropTerm(0.0)], [CropTerm(), CropTerm()], [CropTerm(), "rotation"]):
        with pytest.raises(ValueError, match="at least one, each once, with loss weights > 0"):
            make_gtsa(parts)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        CropTerm(-1.0)
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
    model = make_gtsa([RotationTerm(units=(12, 10, 6))])
    head = model.part("rotation").head
    mlp, logits = head.layers
    x = np.random.default_rng(0).normal(size=(3, 32)).astype("float32")
    h = x
    for i, (dense, norm) in enumerate(zip(mlp.dense_layers, mlp.norm_layers)):
        h = _layer_norm(
            h @ np.asarray(dense.kernel) + np.asarray(dense.bias), np.asarray(norm.gamma), np.asarray(norm.beta)
        )
        h = _gelu(h) if i < 2 else h
    expected = h @ np.asarray(logits.kernel) + np.asarray(logits.bias)
    np.testing.assert_allclose(np.asarray(head(x)), expected, atol=1e-5)
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
    model = TeacherStudentModel(vit, gtsa_parts(), num_local=NUM_LOCAL, image_size=GLOBAL, local_size=LOCAL)
    assert model.backbone.get_layer("block1").drop_path_rate == pytest.approx(0.1)
    assert model.teacher_backbone.drop_path_rate == 0.0
    assert all(model.teacher_backbone.get_layer(f"block{i}").drop_path_rate == 0.0 for i in range(2))
    images = np.random.default_rng(0).random((2, GLOBAL, GLOBAL, 3)).astype("float32")
    first = model.teacher_backbone(images, training=True)["tokens"]
    np.testing.assert_array_equal(first, model.teacher_backbone(images, training=True)["tokens"])


def test_sampling_ratio_takes_torchvisions_adaptive_count():
    assert make_gtsa().part("crop").sampling_ratio == -1
    assert make_gtsa([CropTerm(sampling_ratio=2)]).part("crop").get_config()["sampling_ratio"] == 2
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="sampling_ratio must be an int >= 1 or -1"):
            CropTerm(sampling_ratio=bad)


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


def test_config_drop_path_rate_reaches_the_student_not_the_teacher():
    from train_helpers import load_config

    from keras_eqssl.methods.factory import model_from_config

    config = load_config("gtsa")
    config.model.drop_path_rate = 0.1
    model = model_from_config(config)
    assert model.backbone.drop_path_rate == 0.1
    assert model.teacher_backbone.drop_path_rate == 0.0


# --- the parts' registry and the model kind's config -------------------------------------------
def test_parts_register_by_short_name_and_join_the_config_section():
    assert list(TERMS) == ["crop", "correspondence", "rotation", "dino"]  # the order configs build them in

    class Scale(TeacherStudentTerm):
        short_name = "scale_test"

        def __init__(self, weight: float = 0.0, bins: int = 4, **kwargs):
            super().__init__(weight, **kwargs)
            self.bins = bins

    try:
        assert TERMS["scale_test"] is Scale
        assert TeacherStudentModel.config_section()["scale_test"] == {"weight": 0.0, "bins": 4}
        assert "model.teacher_student.scale_test.weight" in TeacherStudentModel.config_rules()
        with pytest.raises(ValueError, match="short_name 'crop' .* is taken by"):
            type("Crop2", (TeacherStudentTerm,), {"short_name": "crop", "__module__": __name__})
    finally:
        del TERMS["scale_test"]


def test_config_section_is_built_from_the_parts_constructors():
    section = TeacherStudentModel.config_section()
    assert {k: section[k] for k in ("name", "momentum", "projection_units")} == {
        "name": "",
        "momentum": 0.996,
        "projection_units": 0,
    }
    assert {name: section[name]["weight"] for name in TERMS} == {
        "crop": 1.0,
        "correspondence": 0.5,
        "rotation": 0.5,
        "dino": 0.0,
    }
    assert section["crop"] == {"weight": 1.0, "roi_sizes": "", "sampling_ratio": -1}
    assert section["correspondence"] == {"weight": 0.5, "warmup_steps": 0, "match_fraction": 0.5}
    assert sorted(section["dino"]) == sorted(["weight", *TINY_DINO, "student_temperature", "teacher_temperature",
                                              "center_momentum"])  # fmt: skip
    assert TeacherStudentModel.resume_rules() == {"model.teacher_student.correspondence.warmup_steps": "apply"}


def test_gtsa_and_dino_are_two_configs_of_one_kind():
    from train_helpers import load_config

    gtsa, dino = load_config("gtsa"), load_config("gtsa_dino")
    assert gtsa.model.method == dino.model.method == TeacherStudentModel.kind == "teacher_student"
    assert TeacherStudentModel.run_name(gtsa) == "gtsa" and TeacherStudentModel.run_name(dino) == "dino"
    gtsa.model.teacher_student.name = ""
    assert TeacherStudentModel.run_name(gtsa) == "crop_correspondence_rotation"
    assert gtsa.model.teacher_student.correspondence.warmup_steps == gtsa.train.steps // 10


def test_config_problems_name_the_fields():
    from train_helpers import load_config

    from keras_eqssl.config_validation import validate
    from keras_eqssl.errors import ConfigError

    assert TeacherStudentModel.config_problems(load_config("gtsa")) == []
    config = load_config("gtsa")
    config.augment.policy = "simclr"
    config.augment.gtsa.rotate = False
    problems = " | ".join(TeacherStudentModel.config_problems(config))
    assert "set config.augment.policy='gtsa'" in problems
    assert "config.model.teacher_student.rotation.weight > 0 predicts" in problems
    config = load_config("gtsa")
    for name in TERMS:
        config.model.teacher_student[name].weight = 0.0
    assert "every part's weight is 0" in " ".join(TeacherStudentModel.config_problems(config))
    config = load_config("gtsa_dino")
    assert TeacherStudentModel.batch_problems(config, 2) == []
    assert "DINO (config.model.teacher_student.dino.weight > 0)" in TeacherStudentModel.batch_problems(config, 1)[0]
    assert TeacherStudentModel.batch_problems(load_config("gtsa"), 1) == []
    for field, value in (("correspondence.match_fraction", 0.0), ("crop.roi_sizes", "4"), ("dino.units", 0),
                         ("rotation.weight", -1.0), ("dino.center_momentum", 2.0)):  # fmt: skip
        config = load_config("gtsa")
        part, key = field.split(".")
        config.model.teacher_student[part][key] = value
        with pytest.raises(ConfigError, match=rf"config\.model\.teacher_student\.{field}="):
            validate(config)
