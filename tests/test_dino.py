"""DINO: the head (`DINOHead`), the multi-crop loss (`dino_loss`) and the centre update, against NumPy.

The two-replica check (a `MirroredStrategy` over two logical CPU devices) runs in a fresh
interpreter (`python tests/test_dino.py` prints its figures as JSON): logical devices must be
configured before TensorFlow initialises its devices, which an earlier test has already done in
the pytest process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from loss_helpers import run_loss_test  # noqa: E402
from nn_helpers import run_layer_test  # noqa: E402

from keras_eqssl.losses.dino import dino_center_update, dino_loss  # noqa: E402
from keras_eqssl.nn.dino_head import DINOHead  # noqa: E402

_ERF = np.vectorize(math.erf)
NUM_STUDENT, NUM_TEACHER, BATCH, K = 4, 2, 6, 10


def _rand(*shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def _views(num, batch=BATCH, k=K, seed=0, scale=2.0):
    return tuple(_rand(batch, k, seed=seed + i, scale=scale) for i in range(num))


# --- NumPy references (float64) ----------------------------------------------------------------
def _softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def numpy_dino_loss(students, teachers, center, tau_s=0.1, tau_t=0.04) -> float:
    """DINO's loss with the explicit double loop of the paper's Algorithm 1."""
    students = [np.asarray(s, np.float64) for s in students]
    total, pairs = 0.0, 0
    for a, t in enumerate(teachers):
        p_t = _softmax((np.asarray(t, np.float64) - np.asarray(center, np.float64)) / tau_t)
        for v, s in enumerate(students):
            if v == a:
                continue
            log_p_s = np.log(_softmax(s / tau_s))
            total += np.mean(-np.sum(p_t * log_p_s, axis=-1))
            pairs += 1
    return total / pairs


def numpy_center_update(center, teachers, momentum):
    return momentum * np.asarray(center, np.float64) + (1.0 - momentum) * np.concatenate(teachers).mean(axis=0)


def numpy_dino_head(head: DINOHead, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    for i, dense in enumerate(head.dense_layers):
        x = x @ np.asarray(dense.kernel, np.float64) + np.asarray(dense.bias, np.float64)
        if i < len(head.dense_layers) - 1:
            x = 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)))
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    v, g = np.asarray(head.last_layer_v, np.float64), np.asarray(head.last_layer_g, np.float64)
    return x @ (g * v / np.linalg.norm(v, axis=0, keepdims=True))


# --- DINOHead ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, num_weights",
    [
        (dict(output_units=32, hidden_units=16, bottleneck_units=8), 3 * 2 + 2),  # 3 Dense, V and g
        (dict(output_units=32, hidden_units=16, bottleneck_units=8, num_layers=1, norm_last_layer=False), 2 + 2),
    ],
)
def test_dino_head(kwargs, num_weights, tmp_path):
    run_layer_test(lambda: DINOHead(**kwargs), [_rand(4, 12)], (4, 32), num_weights, tmp_path=tmp_path)


def test_dino_head_structure_and_initialisers():
    head = DINOHead(output_units=300, hidden_units=400, bottleneck_units=64, num_layers=3)
    head.build((None, 200))
    assert [d.units for d in head.dense_layers] == [400, 400, 64]
    for dense in head.dense_layers:
        kernel = np.asarray(dense.kernel)
        assert not np.any(np.asarray(dense.bias)), f"{dense.name}: biases should start at 0"
        assert np.max(np.abs(kernel)) <= 0.04 + 1e-6, "truncated at 2 stddev"
        assert 0.015 < kernel.std() < 0.02, kernel.std()  # a N(0, 0.02^2) truncated at +-2 sigma: ~0.0176
    assert tuple(head.last_layer_v.shape) == (64, 300) and tuple(head.last_layer_g.shape) == (300,)
    np.testing.assert_array_equal(np.asarray(head.last_layer_g), np.ones(300, "float32"))


def test_dino_head_last_layer_columns_have_unit_norm():
    head = DINOHead(output_units=40, hidden_units=16, bottleneck_units=8)
    x = _rand(5, 12)
    out = np.asarray(head(x))
    assert not head.last_layer_g.trainable
    assert not any(w is head.last_layer_g for w in head.trainable_weights)
    assert any(w is head.last_layer_v for w in head.trainable_weights)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(head.last_layer_kernel()), axis=0), 1.0, atol=1e-6)
    assert np.all(np.abs(out) <= 1.0 + 1e-6), "unit-norm inputs and columns give cosine logits"
    # Scaling V changes nothing: only its direction counts.
    expected = out
    head.last_layer_v.assign(head.last_layer_v * 7.0)
    np.testing.assert_allclose(np.asarray(head(x)), expected, atol=1e-6)


def test_dino_head_trainable_gain():
    head = DINOHead(output_units=20, hidden_units=16, bottleneck_units=8, norm_last_layer=False)
    head.build((None, 12))
    assert head.last_layer_g.trainable and any(w is head.last_layer_g for w in head.trainable_weights)
    gain = _rand(20, seed=4)
    head.last_layer_g.assign(gain)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(head.last_layer_kernel()), axis=0), np.abs(gain), rtol=1e-5)
    x = tf.Variable(_rand(3, 12))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head(x) ** 2)
    grads = tape.gradient(loss, head.trainable_weights)
    assert all(g is not None and np.any(np.asarray(g)) for g in grads)


@pytest.mark.parametrize("num_layers, norm_last_layer", [(3, True), (2, False), (1, True)])
def test_dino_head_matches_numpy(num_layers, norm_last_layer):
    head = DINOHead(
        output_units=24, hidden_units=16, bottleneck_units=8, num_layers=num_layers, norm_last_layer=norm_last_layer
    )
    x = _rand(5, 12)
    head.build(x.shape)
    rng = np.random.default_rng(1)  # O(1) weights, so GELU and the normalisations matter
    head.set_weights([(0.5 * rng.normal(size=w.shape)).astype("float32") for w in head.get_weights()])
    np.testing.assert_allclose(np.asarray(head(x)), numpy_dino_head(head, x), rtol=1e-5, atol=1e-5)


def test_dino_head_mixed_precision():
    x = _rand(4, 12)
    reference = DINOHead(output_units=24, hidden_units=16, bottleneck_units=8)
    reference.build(x.shape)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = DINOHead(output_units=24, hidden_units=16, bottleneck_units=8)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.build(x.shape)
    mixed.set_weights(reference.get_weights())
    out = mixed(x)
    assert out.dtype == "float16" and all(w.dtype == "float32" for w in mixed.weights)
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(reference(x)), atol=5e-3)


@pytest.mark.parametrize("name", ["output_units", "hidden_units", "bottleneck_units", "num_layers"])
def test_dino_head_bad_arguments(name):
    with pytest.raises(ValueError, match=name):
        DINOHead(**{name: 0})


# --- dino_loss ---------------------------------------------------------------------------------
BAD_LOSS_ARGS = [
    (_views(1), _views(2), _rand(K)),  # fewer student than teacher views
    (_views(1), _views(1), _rand(K)),  # no (teacher, other view) pair
    (_views(4, k=K + 1), _views(2), _rand(K)),  # K differs
    (_views(4), _views(2), _rand(K + 1)),  # the centre's width differs
    (_views(4), _views(2), _rand(1, K)),  # the centre is not (K,)
    (_rand(4, BATCH, K), _views(2), _rand(K)),  # a stacked tensor, not a list of views
    ((), _views(2), _rand(K)),
    ((_rand(BATCH, K, 1),) * 4, _views(2), _rand(K)),  # not (B, K)
]


@pytest.mark.parametrize("temperatures", [(0.1, 0.04), (0.2, 0.07)])
def test_dino_loss_matches_numpy(temperatures):
    tau_s, tau_t = temperatures
    # 2 global + 2 local crops; the teacher sees the global crops
    students, teachers, center = _views(NUM_STUDENT), _views(NUM_TEACHER, seed=10), _rand(K, seed=20, scale=0.5)
    expected = numpy_dino_loss(students, teachers, center, tau_s, tau_t)
    run_loss_test(
        dino_loss,
        (students, teachers, center),
        {"student_temperature": tau_s, "teacher_temperature": tau_t},
        expected=expected,
        grad_args=(0,),
        no_grad_args=(1, 2),
        permutable=False,  # the centre has no batch dimension; see test_dino_loss_batch_permutation
        bad_args=BAD_LOSS_ARGS,
    )


def test_dino_loss_batch_permutation():
    students, teachers, center = _views(NUM_STUDENT), _views(NUM_TEACHER, seed=10), _rand(K, seed=20)
    perm = np.random.default_rng(1).permutation(BATCH)
    permuted = dino_loss([s[perm] for s in students], [t[perm] for t in teachers], center)
    np.testing.assert_allclose(float(permuted), float(dino_loss(list(students), list(teachers), center)), rtol=1e-6)


def test_dino_loss_teacher_gets_no_gradient():
    students = [tf.Variable(s) for s in _views(NUM_STUDENT)]
    teachers = [tf.Variable(t) for t in _views(NUM_TEACHER, seed=10)]
    center = keras.Variable(_rand(K, seed=20))
    with tf.GradientTape() as tape:
        loss = dino_loss(students, teachers, center)
    grads = tape.gradient(loss, [*students, *teachers, center.value])
    assert all(g is not None and np.any(np.asarray(g)) for g in grads[:NUM_STUDENT]), "every student view gets one"
    assert all(g is None for g in grads[NUM_STUDENT:]), grads[NUM_STUDENT:]


def test_dino_loss_pairs_skip_the_same_view():
    # teacher view 0 equals student view 0 one-hot-sharp: only the other views may contribute.
    students = [np.zeros((2, 3), "float32") for _ in range(2)]
    students[0] = np.array([[30.0, 0.0, 0.0]] * 2, "float32")  # confident, would cost ~0 against itself
    teachers = [np.array([[0.0, 30.0, 0.0]] * 2, "float32")]  # the teacher is sure of class 1
    # the only pair: (teacher 0, student 1 uniform) -> log(3)
    np.testing.assert_allclose(float(dino_loss(students, teachers, np.zeros(3, "float32"))), math.log(3.0), rtol=1e-5)


@pytest.mark.parametrize("name", ["student_temperature", "teacher_temperature"])
def test_dino_loss_bad_temperature(name):
    with pytest.raises(ValueError, match=name):
        dino_loss(list(_views(4)), list(_views(2)), _rand(K), **{name: 0.0})


# --- dino_center_update ------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_dino_center_update_matches_numpy(momentum):
    start = _rand(K, seed=3)
    teachers = _views(NUM_TEACHER, seed=10)
    center = keras.Variable(start)
    dino_center_update(center, list(teachers), momentum=momentum)
    expected = numpy_center_update(start, teachers, momentum)
    np.testing.assert_allclose(np.asarray(center), expected, rtol=1e-6, atol=1e-6)
    # in a graph, twice, with a tensor momentum
    tf.function(lambda *t: dino_center_update(center, list(t), tf.constant(momentum)))(*teachers)
    np.testing.assert_allclose(
        np.asarray(center), numpy_center_update(expected, teachers, momentum), rtol=1e-6, atol=1e-6
    )


def test_dino_center_update_bad_arguments():
    center = keras.Variable(np.zeros(K, "float32"))
    with pytest.raises(ValueError, match="momentum"):
        dino_center_update(center, list(_views(2)), momentum=1.5)
    with pytest.raises(ValueError, match=r"center.shape=\(10,\)"):
        dino_center_update(center, list(_views(2, k=K + 2)))
    with pytest.raises(ValueError, match="same shape"):
        dino_center_update(center, [_rand(BATCH, K), _rand(BATCH, K + 1)])
    with pytest.raises(ValueError, match="teacher_logits"):
        dino_center_update(center, _rand(BATCH, K))


# --- two replicas ------------------------------------------------------------------------------
SPLITS = [2, 4]  # uneven: the global mean must weight the replicas by their batch sizes


def compute_replica_figures() -> dict:
    """`dino_loss` and `dino_center_update` on 2 CPU replicas vs one device, on the same global batch."""
    tf.get_logger().setLevel("ERROR")
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
    assert strategy.num_replicas_in_sync == 2
    students, teachers = _views(NUM_STUDENT), _views(NUM_TEACHER, seed=10)
    start = _rand(K, seed=20, scale=0.5)
    momentum = 0.7

    # one device
    single_center = keras.Variable(start)
    student_vars = [tf.Variable(s) for s in students]
    with tf.GradientTape() as tape:
        single_loss = dino_loss(student_vars, list(teachers), single_center)
    single_grads = tape.gradient(single_loss, student_vars)
    single_centers = []
    for _ in range(2):
        dino_center_update(single_center, list(teachers), momentum)
        single_centers.append(np.asarray(single_center))

    # two replicas
    with strategy.scope():
        center = keras.Variable(start)
    bounds = np.cumsum([0, *SPLITS])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(
            tf.constant(x[bounds[ctx.replica_id_in_sync_group] : bounds[ctx.replica_id_in_sync_group + 1]])
            for x in (*students, *teachers)
        )
    )

    def loss_and_grads(xs):
        s, t = list(xs[:NUM_STUDENT]), list(xs[NUM_STUDENT:])
        with tf.GradientTape() as tape:
            tape.watch(s)
            loss = dino_loss(s, t, center)
        return loss, tape.gradient(loss, s)

    losses, grads = tf.function(lambda xs: strategy.run(loss_and_grads, args=(xs,)))(per_replica)
    replica_losses = [float(x) for x in strategy.experimental_local_results(losses)]
    # each replica's gradient is d(global_loss)/d(its rows): concatenated, the single-device gradient
    replica_grads = [np.concatenate([np.asarray(r) for r in strategy.experimental_local_results(g)]) for g in grads]

    update = lambda xs: dino_center_update(center, list(xs[NUM_STUDENT:]), momentum)
    center_diffs = []
    # first compiled (as training runs), then eagerly (Keras's run_eagerly still goes through strategy.run)
    for step, run in enumerate((tf.function(lambda xs: strategy.run(update, args=(xs,))), None)):
        if run is None:
            strategy.run(update, args=(per_replica,))
        else:
            run(per_replica)
        local = [np.asarray(x) for x in strategy.experimental_local_results(center.value)]
        center_diffs.append(max(float(np.max(np.abs(x - single_centers[step]))) for x in local))
    return {
        "single_loss": float(single_loss),
        "replica_losses": replica_losses,
        "grad_diff": max(float(np.max(np.abs(a - np.asarray(b)))) for a, b in zip(replica_grads, single_grads)),
        "grad_max": max(float(np.max(np.abs(np.asarray(g)))) for g in single_grads),
        "center_diffs": center_diffs,
        "center_moved": float(np.max(np.abs(single_centers[0] - start))),
    }


@pytest.fixture(scope="module")
def replica_figures():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "-1",  # both runs on the CPU
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dino_loss_two_replicas_sum_to_one_device(replica_figures):
    f = replica_figures
    assert abs(sum(f["replica_losses"]) - f["single_loss"]) < 1e-5, f
    assert all(abs(x - f["single_loss"] / 2) < 1e-5 for x in f["replica_losses"]), f"each returns global / 2: {f}"
    assert f["grad_max"] > 1e-3 and f["grad_diff"] < 1e-5, f


def test_dino_center_update_two_replicas_equals_one_device(replica_figures):
    f = replica_figures
    assert f["center_moved"] > 1e-2, f
    assert max(f["center_diffs"]) < 1e-6, f"both replicas' centre must equal the one-device centre: {f}"


if __name__ == "__main__":
    from keras_eqssl.distribute import configure_logical_cpus

    configure_logical_cpus(2)
    print(json.dumps(compute_replica_figures()))
