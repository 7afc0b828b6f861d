"""Gradient accumulation (`config.train.accumulate_steps`, `SSLModel.compile(accumulate_steps=k)`).

One training step splits the batch into k micro-batches and makes one optimizer update from their
mean gradient. The rule (docs/guide/memory.md): for a loss that is a mean of per-example terms on a
model without batch statistics, k micro-batches of B equal one batch of k * B; where the loss or
the network looks across the batch (SimCLR's negatives, VICReg's variance and covariance,
BatchNorm) each micro-batch is its own batch, and the update differs.

Tolerance of the equalities: SGD at lr 0.5 moves the weights by O(1) in one update; the
accumulated update matches the large batch's to 1e-5 absolute (float32 sums in another order,
measured ~1e-6), while the batch-dependent losses differ by more than 1e-3.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from method_helpers import as_tensors, random_pair_batch, tiny_backbone

from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.methods import INVARIANCES, PairModel
from keras_eqssl.methods.accumulation import check_accumulate_steps
from keras_eqssl.nn import backbone_from_name

SIZE, BATCH = 16, 8
SAME_ATOL = 1e-5  # the accumulated update vs the large batch's (see the module doc)
DIFFERENT = 1e-3  # the least difference a batch-dependent loss must show

# Heads without BatchNorm: one Dense (the MLP's last layer has no norm), or none.
NO_BN_HEADS = {
    "simsiam": dict(projector_units=[], predictor_units=[16]),
    "byol": dict(projector_units=[8], predictor_units=[8], base_momentum=0.9),  # and an EMA target
    "vicreg": dict(projector_units=[16]),
    "simclr": dict(projector_units=[16]),
}


def _layer_norm_backbone():
    """A one-block ViT (LayerNorm only): no statistic over the batch."""
    return backbone_from_name("vit_tiny", image_size=SIZE, depth=1, hidden_dim=16, mlp_dim=16)


def _model(invariance: str, accumulate_steps=None, backbone=_layer_norm_backbone) -> PairModel:
    keras.utils.set_random_seed(0)  # the same initial weights for every k
    model = PairModel(backbone(), INVARIANCES[invariance](**NO_BN_HEADS[invariance]), image_size=SIZE)
    extra = {} if accumulate_steps is None else {"accumulate_steps": accumulate_steps}
    model.compile(optimizer=keras.optimizers.SGD(0.5), **extra)
    return model


def _weights(model) -> list[np.ndarray]:
    return [w.numpy() for w in model.weights]


def _one_update(invariance: str, k: int, backbone=_layer_norm_backbone) -> tuple[list, float, PairModel]:
    """Weights and logged loss after one `train_step` on the batch of `BATCH`, in k micro-batches."""
    model = _model(invariance, k, backbone)
    logs = model.train_step(as_tensors(random_pair_batch(BATCH, SIZE, specs={})))
    return _weights(model), float(logs["loss"]), model


def _max_diff(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


# --- (a) off by default: bit-identical ------------------------------------------------------------
def _two_steps(option, traced: bool) -> list[np.ndarray]:
    """Weights after two steps of 8 (BatchNorm in the backbone, VICReg), with `accumulate_steps=option`."""
    model = _model("vicreg", option, backbone=tiny_backbone)
    data = random_pair_batch(2 * BATCH, SIZE, specs={})
    if traced:
        model.fit(data, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    else:
        for rows in (slice(0, BATCH), slice(BATCH, None)):
            model.train_step(as_tensors({"views": {v: x[rows] for v, x in data["views"].items()}}))
    assert int(model.optimizer.iterations.numpy()) == 2
    return _weights(model)


@pytest.mark.parametrize("traced", [False, pytest.param(True, marks=pytest.mark.slow)])  # traced: ~4 s
def test_accumulate_steps_1_trains_bit_identically_to_no_option(traced):
    runs = [_two_steps(option, traced) for option in (None, 1)]
    assert _max_diff(runs[0], _weights(_model("vicreg", backbone=tiny_backbone))) > 0  # training moved them
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)


# --- (b) a mean of per-example terms, no batch statistics: k micro-batches = one batch ------------
@pytest.mark.parametrize("invariance", ["simsiam", "byol"])
def test_two_micro_batches_equal_one_batch_of_twice_the_size(invariance):
    """SimSiam / BYOL (negative cosine per example) on a LayerNorm ViT with BN-free heads: the
    weights after one update, BYOL's EMA target included (moved once per update, not per
    micro-batch), the logged loss and the step count match the large batch's."""
    big, big_loss, _ = _one_update(invariance, 1)
    acc, acc_loss, model = _one_update(invariance, 2)
    start = _weights(_model(invariance))
    assert _max_diff(big, start) > 0.1  # the update is large enough to show a difference
    for x, y in zip(big, acc):
        np.testing.assert_allclose(y, x, rtol=0, atol=SAME_ATOL)
    assert acc_loss == pytest.approx(big_loss, rel=1e-5)  # the mean over micro-batches
    assert int(model.optimizer.iterations.numpy()) == 1  # a step is one optimizer update


@pytest.mark.slow  # two traced fits of 2 steps (~6 s on 2 cores)
def test_traced_fit_with_micro_batches_equals_the_large_batch():
    """The same through `fit` (a traced step, micro-batches ordered by control dependencies)."""
    data = random_pair_batch(2 * BATCH, SIZE, specs={})
    runs = []
    for k in (1, 2):
        model = _model("simsiam", k)
        model.fit(data, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        assert int(model.optimizer.iterations.numpy()) == 2
        runs.append(_weights(model))
    for x, y in zip(*runs):
        np.testing.assert_allclose(y, x, rtol=0, atol=SAME_ATOL)


# --- (c) the documented rule: batch-dependent losses and BatchNorm see one micro-batch -------------
@pytest.mark.parametrize(
    "invariance, backbone, why",
    [
        ("simclr", _layer_norm_backbone, "negatives come from the micro-batch"),
        ("vicreg", _layer_norm_backbone, "variance and covariance are over the micro-batch"),
        ("simsiam", tiny_backbone, "BatchNorm normalises over the micro-batch"),
    ],
)
def test_batch_dependent_losses_differ_from_the_large_batch(invariance, backbone, why):
    big, big_loss, _ = _one_update(invariance, 1, backbone)
    acc, acc_loss, _ = _one_update(invariance, 2, backbone)
    assert _max_diff(big, acc) > DIFFERENT, why
    if invariance == "simclr":  # half the negatives: an easier task, a lower loss
        assert acc_loss < big_loss


def test_micro_batches_that_differ_give_different_updates():
    """The accumulated step uses every micro-batch: changing the second half of the batch changes it."""
    model = _model("simsiam", 2)
    batch = random_pair_batch(BATCH, SIZE, specs={})
    other = {"views": {v: x.copy() for v, x in batch["views"].items()}}
    other["views"]["v1"][BATCH // 2 :] = 1.0 - other["views"]["v1"][BATCH // 2 :]
    model.train_step(as_tensors(batch))
    first = _weights(model)
    model = _model("simsiam", 2)
    model.train_step(as_tensors(other))
    assert _max_diff(first, _weights(model)) > DIFFERENT


# --- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_compile_refuses_a_bad_accumulate_steps(bad):
    with pytest.raises(ValueError, match="accumulate_steps must be an integer >= 1"):
        check_accumulate_steps(bad)


def test_batch_not_split_by_accumulate_steps_is_a_config_error():
    from keras_eqssl.config_validation import validate

    config = get_config()
    config.data.batch_size, config.train.accumulate_steps = 12, 5
    with pytest.raises(ConfigError, match=r"batch_size=12 does not split into config.train.accumulate_steps=5"):
        validate(config)
    config.train.accumulate_steps = 0
    with pytest.raises(ConfigError, match="train.accumulate_steps=0: must be a positive integer"):
        validate(config)
    config.train.accumulate_steps = 4
    validate(config)  # 3 pairs a micro-batch


def test_micro_batch_too_small_for_the_loss_names_it():
    """The model kind's batch rule applies to one micro-batch: VICReg needs 2 pairs."""
    from keras_eqssl.config_validation import validate

    config = get_config()
    config.data.batch_size, config.train.accumulate_steps = 8, 8
    with pytest.raises(ConfigError, match=r"batch_size=8 \(micro-batches of 1\)"):
        validate(config)


def test_replicas_times_accumulate_steps_must_divide_the_batch():
    from keras_eqssl.cli.train import _check_replica_batch

    config = get_config()
    config.data.batch_size, config.train.accumulate_steps = 12, 2
    _check_replica_batch(config, 2)  # 3 pairs per replica and micro-batch
    with pytest.raises(ConfigError, match=r"4 replicas x config.train.accumulate_steps=2 .* multiple of 8"):
        _check_replica_batch(config, 4)


def test_resume_applies_a_changed_accumulate_steps():
    from keras_eqssl.resume import resume_changes, rule_for

    assert rule_for("train.accumulate_steps") == "apply"
    old, new = get_config(), get_config()
    new.train.accumulate_steps = 2
    assert [(c.key, c.rule) for c in resume_changes(old.to_dict(), new.to_dict())] == [
        ("train.accumulate_steps", "apply")
    ]


def test_the_default_is_one():
    assert get_config().train.accumulate_steps == 1
    assert PairModel.accumulate_steps == 1


def test_a_batch_that_does_not_split_is_named():
    model = _model("simsiam", 3)
    with pytest.raises(ValueError, match="accumulate_steps=3: a batch of \\[8\\] rows does not split into 3"):
        model.train_step(as_tensors(random_pair_batch(BATCH, SIZE, specs={})))


TWO_REPLICAS = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import test_gradient_accumulation as t
from method_helpers import as_tensors, random_pair_batch

data = random_pair_batch(t.BATCH, t.SIZE, specs={})
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    mirrored = t._model("simsiam", 2)
mirrored.fit(tf.data.Dataset.from_tensors(data), epochs=1, verbose=0)
one = t._model("simsiam", 1)
one.train_step(as_tensors(data))
print(int(mirrored.optimizer.iterations.numpy()), t._max_diff(t._weights(mirrored), t._weights(one)))
"""


@pytest.mark.slow  # a fresh interpreter with two logical CPUs (~15 s on 2 cores)
def test_two_replicas_of_two_micro_batches_equal_one_device_with_the_whole_batch():
    """Each replica splits its 4 rows into micro-batches of 2; the loss's mean spans the replicas."""
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "PYTHONPATH": os.pathsep.join([tests, os.path.dirname(tests)])}
    proc = subprocess.run(
        [sys.executable, "-c", TWO_REPLICAS], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps, diff = proc.stdout.split()[-2:]
    assert int(steps) == 1
    assert float(diff) < SAME_ATOL


@pytest.mark.slow  # two tiny teacher-student models, eager (~7 s on 2 cores)
def test_teacher_student_gtsa_equals_the_large_batch_and_dino_does_not():
    """GTSA's losses (crop, correspondence, rotation on a ViT) are per-example means: two
    micro-batches give the weights of the whole batch, EMA teacher included. DINO's centre moves
    once per micro-batch, towards that micro-batch's mean: the update differs."""
    from test_teacher_student import make_dino, make_gtsa, multicrop_batch

    batch = as_tensors(multicrop_batch(BATCH))
    for make, same in ((make_gtsa, True), (make_dino, False)):
        runs = []
        for k in (1, 2):
            keras.utils.set_random_seed(0)
            model = make()
            model.compile(optimizer=keras.optimizers.SGD(0.1), accumulate_steps=k)
            model.train_step(batch)
            runs.append(_weights(model))
        diff = _max_diff(*runs)
        assert diff < SAME_ATOL if same else diff > DIFFERENT, (make.__name__, diff)
