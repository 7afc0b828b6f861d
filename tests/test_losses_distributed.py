"""Two replicas give the same loss and gradients as one device on the same global batch.

A `MirroredStrategy` over two logical CPU devices runs one loss+gradient step of a tiny Dense
model; the per-replica losses (each global_loss / 2, by the convention of
`keras_eqssl.losses.distributed`) must sum to the single-device loss, and the gradients summed
over replicas (what `tf.distribute` applies) must equal the single-device gradients (tol 1e-4).
Negative controls: without the all-gather (`gather_distributed=False`), NT-Xent, VICReg and
Barlow Twins gradients must differ, so the comparison can fail.

Logical devices must be configured before TensorFlow initialises its devices. When this module
runs after others that already used TensorFlow, the same comparisons run in a fresh interpreter
(`python tests/test_losses_distributed.py` prints them as JSON), so the result does not depend on
the order pytest runs files in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from loss_helpers import distributed_step  # noqa: E402

from keras_eqssl.augment.base import ParamSpec  # noqa: E402
from keras_eqssl.losses import (  # noqa: E402
    barlow_twins,
    ema_update,
    negative_cosine,
    nt_xent,
    parameter_regression,
    reconstruction_mse,
    vicreg,
)

TOL = 1e-4
IN_DIM, EMB_DIM, GLOBAL_BATCH = 5, 6, 8
EVEN, UNEVEN = [4, 4], [3, 5]
PARAM_SPECS = [
    ParamSpec("crop", (2,), "continuous", 0.0, 1.0),
    ParamSpec("flip", (1,), "binary", 0, 1),
    ParamSpec("rot", (), "categorical", 0, 3, "int32"),
]


# --- the cases: (build layers, forward to loss arguments, loss, batch, splits) ---------------
def _dense(units, seed):
    layer = keras.layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(seed))
    layer.build((None, IN_DIM if units == EMB_DIM else EMB_DIM))
    return layer


def _pair_case(loss_fn, splits=EVEN):
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(GLOBAL_BATCH, IN_DIM)).astype("float32")
    x2 = (x1 + 0.3 * rng.normal(size=x1.shape)).astype("float32")
    return (lambda: [_dense(EMB_DIM, 1)], lambda ls, a, b: (ls[0](a), ls[0](b)), loss_fn, (x1, x2), splits)


def _siamese_case(variant):
    def build():
        proj = _dense(EMB_DIM, 1)
        pred = keras.layers.Dense(EMB_DIM, kernel_initializer=keras.initializers.GlorotUniform(2))
        pred.build((None, EMB_DIM))
        return [proj, pred]

    def forward(layers, a, b):
        proj, pred = layers
        return pred(proj(a)), proj(b)

    _, _, _, batch, splits = _pair_case(None)
    return (build, forward, lambda p, z: negative_cosine(p, z, variant=variant), batch, splits)


def _reconstruction_case(splits):
    x = np.random.default_rng(3).normal(size=(GLOBAL_BATCH, IN_DIM)).astype("float32")

    def build():
        enc, dec = (
            _dense(EMB_DIM, 1),
            keras.layers.Dense(IN_DIM, kernel_initializer=keras.initializers.GlorotUniform(4)),
        )
        dec.build((None, EMB_DIM))
        return [enc, dec]

    return (build, lambda ls, a: (ls[1](ls[0](a)), a), reconstruction_mse, (x,), splits)


def _parameter_case():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(GLOBAL_BATCH, IN_DIM)).astype("float32")
    crop = rng.uniform(size=(GLOBAL_BATCH, 2)).astype("float32")
    flip = rng.integers(0, 2, size=(GLOBAL_BATCH, 1)).astype("float32")
    rot = rng.integers(0, 4, size=(GLOBAL_BATCH,)).astype("int32")

    def build():
        heads = [keras.layers.Dense(n, kernel_initializer=keras.initializers.GlorotUniform(6 + n)) for n in (2, 1, 4)]
        for head in heads:
            head.build((None, EMB_DIM))
        return [_dense(EMB_DIM, 1), *heads]

    def forward(layers, x, crop, flip, rot):
        h = layers[0](x)
        pred = {"crop": layers[1](h), "flip": layers[2](h), "rot": layers[3](h)}
        return pred, {"crop": crop, "flip": flip, "rot": rot}

    return (build, forward, lambda p, t: parameter_regression(p, t, PARAM_SPECS), (x, crop, flip, rot), UNEVEN)


CASES = {
    "nt_xent": lambda: _pair_case(nt_xent),
    "nt_xent_uneven_split": lambda: _pair_case(nt_xent, UNEVEN),
    "nt_xent_cross_view": lambda: _pair_case(lambda a, b: nt_xent(a, b, negatives="cross_view")),
    "nt_xent_cross_view_uneven_split": lambda: _pair_case(lambda a, b: nt_xent(a, b, negatives="cross_view"), UNEVEN),
    "vicreg": lambda: _pair_case(vicreg),
    "vicreg_sie_weights": lambda: _pair_case(lambda a, b: vicreg(a, b, 10.0, 10.0, 1.0)),
    "barlow_twins": lambda: _pair_case(barlow_twins),
    "simsiam_negative_cosine": lambda: _siamese_case("simsiam"),
    "byol_negative_cosine": lambda: _siamese_case("byol"),
    "reconstruction_mse": lambda: _reconstruction_case(EVEN),
    "reconstruction_mse_uneven_split": lambda: _reconstruction_case(UNEVEN),
    "parameter_regression_uneven_split": _parameter_case,
}
# Negative controls: the same comparison without gathering across replicas must fail.
CONTROLS = {
    "nt_xent_without_gather": lambda: _pair_case(lambda a, b: nt_xent(a, b, gather_distributed=False)),
    "nt_xent_cross_view_without_gather": lambda: _pair_case(
        lambda a, b: nt_xent(a, b, negatives="cross_view", gather_distributed=False)
    ),
    "vicreg_without_gather": lambda: _pair_case(lambda a, b: vicreg(a, b, gather_distributed=False)),
    "barlow_twins_without_gather": lambda: _pair_case(lambda a, b: barlow_twins(a, b, gather_distributed=False)),
}


# --- computing the figures -------------------------------------------------------------------
def _two_cpus() -> bool:
    """Splits the CPU into two logical devices; False if TensorFlow already initialised them."""
    try:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:
        pass  # "Virtual devices cannot be modified after being initialized"
    return len(tf.config.list_logical_devices("CPU")) >= 2


def _ema_figure(strategy) -> float:
    """EMA of mirrored variables from inside `strategy.run`: max error against the formula, both replicas."""
    with strategy.scope():
        target, online = _dense(EMB_DIM, 1), _dense(EMB_DIM, 2)
    expected = [0.9 * t + 0.1 * o for t, o in zip(target.get_weights(), online.get_weights())]
    tf.function(lambda: strategy.run(lambda: ema_update(target.weights, online.weights, 0.9)))()
    return max(
        float(np.max(np.abs(np.asarray(local) - e)))
        for v, e in zip(target.weights, expected)
        for local in strategy.experimental_local_results(v.value)
    )


def _keras_optimizer_figure(strategy) -> dict:
    """One `keras.optimizers.SGD` step with NT-Xent on two replicas and on one device: weight difference.

    Keras optimizers sum the per-replica gradients, so with the global_loss / R convention the
    weights after the step must match the single-device step.
    """
    build, forward, loss_fn, batch, splits = _pair_case(nt_xent)
    single = build()
    with strategy.scope():
        dist = build()
        dist_opt = keras.optimizers.SGD(0.5)
        dist_opt.build(dist[0].trainable_variables)
    for src, dst in zip(single, dist):
        dst.set_weights(src.get_weights())
    start = single[0].get_weights()

    def step(layers, opt, *xs):
        with tf.GradientTape() as tape:
            loss = loss_fn(*forward(layers, *xs))
        opt.apply(tape.gradient(loss, layers[0].trainable_variables), layers[0].trainable_variables)

    single_opt = keras.optimizers.SGD(0.5)
    single_opt.build(single[0].trainable_variables)
    tf.function(lambda *xs: step(single, single_opt, *xs))(*batch)
    bounds = np.cumsum([0, *splits])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(
            x[bounds[ctx.replica_id_in_sync_group] : bounds[ctx.replica_id_in_sync_group + 1]] for x in batch
        )
    )
    tf.function(lambda xs: strategy.run(lambda xs: step(dist, dist_opt, *xs), args=(xs,)))(per_replica)
    return {
        "weight_diff": max(
            float(np.max(np.abs(a - b))) for a, b in zip(single[0].get_weights(), dist[0].get_weights())
        ),
        "weight_change": max(float(np.max(np.abs(a - b))) for a, b in zip(single[0].get_weights(), start)),
    }


def compute_figures() -> dict:
    """Max abs differences, distributed vs single device, for every case and control."""
    tf.get_logger().setLevel("ERROR")  # one tf.function per case: retracing warnings are expected
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == 2
    figures = {}
    for name, make in {**CASES, **CONTROLS}.items():
        r = distributed_step(strategy, *make())
        summed = {k: sum(rep[k] for rep in r["replicas"]) for k in r["single"]}
        figures[name] = {
            "loss_diff": max(float(abs(summed[k] - r["single"][k])) for k in summed),
            # every replica returns the same value, global / R
            "replica_spread": max(
                float(abs(rep[k] - r["single"][k] / 2)) for rep in r["replicas"] for k in r["single"]
            ),
            "grad_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(r["summed_grads"], r["single_grads"])),
            "grad_max": max(float(np.max(np.abs(g))) for g in r["single_grads"]),
            "loss": float(r["single"].get("total", r["single"].get("loss"))),
        }
    figures["ema_update"] = {"max_err": _ema_figure(strategy)}
    figures["keras_sgd_step"] = _keras_optimizer_figure(strategy)
    return figures


@pytest.fixture(scope="module")
def figures():
    if _two_cpus():
        return compute_figures()
    # TensorFlow was initialised by an earlier test module: run the comparison in a fresh process.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_two_replicas_equal_one_device(figures, name):
    f = figures[name]
    assert f["loss_diff"] < TOL, f"{name}: sum of replica losses vs single device: {f}"
    assert f["replica_spread"] < TOL, f"{name}: replicas should each return global_loss / 2: {f}"
    assert f["grad_diff"] < TOL, f"{name}: summed replica gradients vs single device: {f}"
    assert f["grad_max"] > 1e-3, f"{name}: gradients too small for the comparison to mean anything: {f}"


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_without_gather_gradients_differ(figures, name):
    assert figures[name]["grad_diff"] > 100 * TOL, f"{name}: the control should fail the comparison: {figures[name]}"


def test_ema_update_in_replica_context(figures):
    assert figures["ema_update"]["max_err"] < 1e-6, figures["ema_update"]


def test_keras_optimizer_step_matches_one_device(figures):
    f = figures["keras_sgd_step"]
    assert f["weight_change"] > 1e-2 and f["weight_diff"] < TOL, f


if __name__ == "__main__":
    if not _two_cpus():
        sys.exit("could not configure two logical CPU devices")
    print(json.dumps(compute_figures()))
