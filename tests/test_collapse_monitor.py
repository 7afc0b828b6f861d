"""Collapse monitors: effective rank and embedding std against NumPy, the warning on a collapsed
model and none on a healthy one, and training unchanged by the monitor."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest

from keras_eqssl.methods.collapse import (
    RANK_KEY,
    STD_KEY,
    CollapseMonitor,
    collapse_signs,
    effective_rank,
    embedding_std,
)
from tests.method_helpers import as_tensors, make_pair_model, policy_pair_batch, random_pair_batch


def _numpy_erank(x) -> float:
    s = np.linalg.svd(x, compute_uv=False)
    p = s[s > 0] / s.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def test_effective_rank_of_known_matrices():
    rng = np.random.default_rng(0)
    assert effective_rank(np.eye(16)) == pytest.approx(16.0)
    assert effective_rank(5.0 * np.eye(6, 10)) == pytest.approx(6.0)  # identity-like: min(n, d)
    assert effective_rank(np.outer(rng.normal(size=12), rng.normal(size=7))) == pytest.approx(1.0)
    assert effective_rank(np.zeros((4, 3))) == 0.0
    x = rng.normal(size=(32, 8)) * np.array([10, 5, 2, 1, 1, 0.5, 0.1, 0.01])
    assert effective_rank(x) == pytest.approx(_numpy_erank(x), rel=1e-9)
    assert 1.0 < effective_rank(x) < 8.0


def test_embedding_std_of_known_matrices():
    rng = np.random.default_rng(1)
    assert embedding_std(np.tile(rng.normal(size=(1, 9)), (5, 1))) == pytest.approx(0.0, abs=1e-12)
    x = rng.normal(size=(4096, 64))  # spread over the sphere: about 1/sqrt(d)
    assert embedding_std(x) == pytest.approx(1 / np.sqrt(64), rel=0.05)
    normed = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert embedding_std(3.0 * x) == pytest.approx(float(normed.std(axis=0).mean()))


def test_collapse_signs_thresholds():
    healthy = {STD_KEY: 0.2, RANK_KEY: 10.0}
    assert collapse_signs(healthy, dim=16, batch=32, std_fraction=0.1, rank_fraction=0.05) == []
    signs = collapse_signs({STD_KEY: 0.001, RANK_KEY: 1.0}, 16, 32, 0.1, 0.2)
    assert len(signs) == 2 and "embedding std" in signs[0] and "effective rank" in signs[1]
    assert collapse_signs({STD_KEY: 0.2, RANK_KEY: 1.2}, 16, 8, 0.1, 0.01)  # rank-1-like: below the floor
    assert not collapse_signs({STD_KEY: 0.2, RANK_KEY: 3.0}, 16, 8, 0.1, 0.01)


class _Fixed(keras.Model):
    """An encoder whose embedding is `scale * dense(flattened image)`: scale 0 collapses it to a constant."""

    def __init__(self, scale: float):
        super().__init__()
        self.dense = keras.layers.Dense(32, kernel_initializer=keras.initializers.RandomNormal(seed=0))
        self.scale = scale

    def call(self, images, training=False):
        x = keras.ops.reshape(keras.ops.cast(images, "float32") / 255.0, (keras.ops.shape(images)[0], -1))
        return {"embedding": self.scale * self.dense(x) + 1.0}


def _monitor_on(model, images, every=1):
    stream = io.StringIO()
    monitor = CollapseMonitor(images, every=every, stream=stream)
    monitor.set_model(model)
    return monitor, stream


def _images(n=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


class _Step:
    def __init__(self):
        self.iterations = keras.Variable(0, dtype="int64")


def test_constant_embedding_warns_once_then_when_worse():
    model = _Fixed(scale=0.0)
    model.optimizer = _Step()
    monitor, stream = _monitor_on(model, _images())
    logs = {"loss": 1.0}
    for step in range(1, 4):
        model.optimizer.iterations.assign(step)
        monitor.on_train_batch_end(step - 1, logs)
    said = stream.getvalue()
    assert said.count("WARNING") == 1 and "embedding std" in said and "effective rank 1 <" in said
    assert logs[STD_KEY] == pytest.approx(0.0, abs=1e-9) and logs[RANK_KEY] == pytest.approx(1.0)
    monitor.warned = {STD_KEY: 1.0, RANK_KEY: 8.0}  # the previous warning saw far better numbers
    monitor.measure(4)
    assert stream.getvalue().count("WARNING") == 2


@pytest.mark.slow  # two 2-step fits: about 4 s
def test_a_collapsed_training_run_sees_the_warning_and_a_healthy_one_does_not():
    """Two fits of 2 steps: a backbone whose weights are all zero (frozen, so every image gets the same
    embedding: a collapsed run) warns; the same model with its initial weights does not."""
    batch = as_tensors(policy_pair_batch(batch=8))
    said = {}
    for collapsed in (True, False):
        keras.utils.set_random_seed(0)
        model = make_pair_model("vicreg")
        model.encoder_outputs(batch["views"]["v1"])  # builds the backbone
        if collapsed:
            model.backbone.set_weights([np.zeros_like(w) for w in model.backbone.get_weights()])
            model.backbone.trainable = False
        model.compile(optimizer=keras.optimizers.SGD(1e-3))
        stream = io.StringIO()
        model.fit(_repeat(batch, 2), epochs=1, steps_per_epoch=2, verbose=0,
                  callbacks=[CollapseMonitor(batch["views"]["v1"], every=1, stream=stream)])  # fmt: skip
        said[collapsed] = stream.getvalue()
    assert "WARNING" in said[True] and "collapse" in said[True].lower(), said[True]
    assert said[False] == "", said[False]


def test_healthy_random_model_does_not_warn():
    model = make_pair_model("vicreg")
    batch = random_pair_batch(batch=16, uint8=True, specs={})
    monitor, stream = _monitor_on(model, batch["views"]["v1"])
    stats = monitor.measure(0)
    assert stream.getvalue() == "", stream.getvalue()
    d = model.encoder_outputs(batch["views"]["v1"])["embedding"].shape[-1]
    assert stats[STD_KEY] > monitor.std_fraction / np.sqrt(d) and stats[RANK_KEY] > monitor.rank_fraction * min(16, d)


@pytest.mark.slow  # two short fits: about 25 s on 2 busy cores
def test_monitor_leaves_training_unchanged_and_logs():
    batch = as_tensors(policy_pair_batch(batch=8))
    runs = {}
    for with_monitor in (False, True):
        keras.utils.set_random_seed(0)
        model = make_pair_model("vicreg")
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        callbacks = [CollapseMonitor(batch["views"]["v1"], every=1, stream=io.StringIO())] if with_monitor else []
        seen = []
        callbacks.append(keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(dict(logs))))
        history = model.fit(
            _repeat(batch, 3),
            epochs=1,
            steps_per_epoch=3,
            callbacks=callbacks,
            verbose=0,
        )
        runs[with_monitor] = ([w.numpy() for w in model.weights], history.history, seen)
    for a, b in zip(runs[False][0], runs[True][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[False][1] == runs[True][1]  # the epoch's logs: the model's own metrics only
    seen = runs[True][2]
    assert STD_KEY in seen[0] and RANK_KEY in seen[1] and STD_KEY not in seen[-1]


def _repeat(batch, n):
    import tensorflow as tf

    return tf.data.Dataset.from_tensors(batch).repeat(n)
