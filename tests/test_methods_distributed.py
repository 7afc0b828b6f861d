"""One real `PairModel` training step on two replicas equals the step on one device.

For every invariance loss (SimCLR, VICReg, Barlow Twins, BYOL, SimSiam) and the equivariance
objectives (cross-attention reconstruction, parameter prediction), a `PairModel` is built on one
device and again inside a `MirroredStrategy` over two logical CPU devices, with the same initial
weights. Both run `fit` for one step on the same global batch (8 pairs of 32x32 views, 4 per
replica) with `SGD(learning_rate=1.0)`, so `w_before - w_after` is the applied gradient. Checked
within 1e-4: the logged losses (every term), the applied gradients (relative to the largest one
when it exceeds 1: float32 rounding grows with the values), and every other weight after the
step (BatchNorm moving statistics, BYOL's EMA target network); the mirrored copies of every
variable must stay equal.

The backbone's normalisation is per-example (ViT: LayerNorm) or synchronised (ResNet with
`synchronized=True`), and so is every head's (`synchronized=True`), which makes the comparison
exact. Negative controls, which must fail the same comparison by a wide margin: heads or a
ResNet with per-replica BatchNorm, and a loss that ignores the replica convention (the global
loss on every replica instead of global / R, so the summed gradient doubles).

The steps run eagerly (`run_eagerly=True`: Keras still calls `train_step` through
`strategy.run`), since tracing two replicas costs seconds per model; BYOL also runs compiled by
`tf.function` as training does (the optimizer's and the EMA's `merge_call` inside the graph).

Logical devices must be configured before TensorFlow initialises its devices. When this module
runs after others that already used TensorFlow (or on a machine with GPUs), the same steps run in
a fresh interpreter on the CPU (`python tests/test_methods_distributed.py [case ...]` prints the
figures as JSON), so the result does not depend on the order pytest runs files in.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_eqssl.augment.base import ParamSpec  # noqa: E402
from keras_eqssl.distribute import configure_logical_cpus  # noqa: E402
from keras_eqssl.losses.distributed import unscale  # noqa: E402
from keras_eqssl.methods import (  # noqa: E402
    BYOL,
    BarlowTwins,
    CrossAttentionReconstruction,
    PairModel,
    ParameterPrediction,
    SimCLR,
    SimSiam,
    VICReg,
)
from keras_eqssl.nn import backbone_from_name  # noqa: E402

TOL = 1e-4
GLOBAL_BATCH, SIZE = 8, 32
PARAM_SPECS = {view: [ParamSpec("crop", (4,), "continuous", 0.0, 1.0)] for view in ("v1", "v2")}


class UnscaledVICReg(VICReg):
    """A deliberately wrong loss for the negative control: the global value on every replica (not / R)."""

    def terms(self, h1, h2, target, training=None) -> dict:
        return {k: unscale(v) for k, v in super().terms(h1, h2, target, training).items()}


# --- the models: name -> () -> PairModel (called once outside and once inside the strategy's scope)
def _vit():
    # LayerNorm: per-example, the same on any split of the batch. Glorot's init: timm's N(0, 0.02) makes the
    # tiny ViT's features nearly constant, where VICReg's variance terms are ill-conditioned in float32.
    # One block: a second adds nothing to the comparison but seconds of tracing.
    return backbone_from_name("vit_tiny", init="glorot", depth=1)


def _resnet(synchronized: bool):
    """A two-stage ResNet (8 and 16 channels, a projection shortcut): BatchNorm everywhere."""
    return backbone_from_name(
        "resnet18", stem="cifar", stackwise_num_blocks=[1, 1], stackwise_num_filters=[8, 16], synchronized=synchronized
    )


def _float64(make):
    """Builds under the float64 dtype policy (see the ResNet cases)."""

    def build():
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float64")
        try:
            return make()
        finally:
            keras.config.set_dtype_policy(previous)

    return build


def _model(invariance, backbone=_vit, objectives=list, **kwargs):
    return lambda: PairModel(backbone(), invariance=invariance(), objectives=objectives(), image_size=SIZE, **kwargs)


CASES = {
    "simclr": _model(lambda: SimCLR(projector_units=[32, 16], temperature=0.5, synchronized=True)),
    "vicreg": _model(lambda: VICReg(projector_units=[32, 32], synchronized=True)),
    "barlow_twins": _model(lambda: BarlowTwins(projector_units=[32, 32], lambd=0.05, synchronized=True)),
    "byol": _model(
        lambda: BYOL(projector_units=[32, 16], predictor_units=[32, 16], base_momentum=0.5, synchronized=True)
    ),
    "simsiam": _model(lambda: SimSiam(projector_units=[32, 16], predictor_units=[8, 16], synchronized=True)),
    "vicreg_cross_attention_reconstruction": _model(
        lambda: VICReg(projector_units=[32, 32], synchronized=True),
        objectives=lambda: [CrossAttentionReconstruction(target_size=16, decoder_dim=32, synchronized=True)],
        split=(16, 16),
    ),
    "simclr_parameter_prediction": _model(
        lambda: SimCLR(projector_units=[32, 16], temperature=0.5, synchronized=True),
        objectives=lambda: [ParameterPrediction(targets=["crop"], hidden_units=[32], synchronized=True)],
        split=(16, 16),
        param_specs=PARAM_SPECS,
    ),
    # Keras's synchronised BatchNorm takes var = E[x^2] - E[x]^2 from summed statistics; in float32
    # its cancellation alone moves a ResNet's gradients by up to ~3e-4 (relative) between two
    # summation orders, so the ResNet runs in float64 (the losses still compute in float32).
    "simclr_resnet_synchronized_bn": _float64(
        _model(
            lambda: SimCLR(projector_units=[32, 16], temperature=0.5, synchronized=True),
            backbone=lambda: _resnet(synchronized=True),
        )
    ),
}
# Cases that also run compiled by `tf.function` (the others run eagerly; see the module docstring).
GRAPH_CASES = ("byol",)
# Negative controls: the same comparison must fail.
CONTROLS = {
    "vicreg_per_replica_bn_heads": _model(lambda: VICReg(projector_units=[32, 32], synchronized=False)),
    "simclr_resnet_per_replica_bn": _float64(
        _model(
            lambda: SimCLR(projector_units=[32, 16], temperature=0.5, synchronized=True),
            backbone=lambda: _resnet(synchronized=False),
        )
    ),
    "vicreg_without_replica_scaling": _model(lambda: UnscaledVICReg(projector_units=[32, 32], synchronized=True)),
}


def objective_case(make_objective):
    """The model a `run_objective_test` compares: ViT-tiny, synchronised SimCLR, the objective, split (16, 16)."""
    return _model(
        lambda: SimCLR(projector_units=[32, 16], temperature=0.5, synchronized=True),
        objectives=lambda: [make_objective(True)],
        split=(16, 16),
    )


# --- computing the figures -------------------------------------------------------------------
def _two_cpus() -> bool:
    """Splits the CPU into two logical devices; False if TensorFlow already initialised them otherwise.

    Also False on a machine with GPUs: the one-device model would run on a GPU (TF32 matmuls),
    so the comparison runs in a subprocess that sees only the CPU.
    """
    if tf.config.list_physical_devices("GPU"):
        return False
    try:
        configure_logical_cpus(2)
    except RuntimeError:
        pass
    return len(tf.config.list_logical_devices("CPU")) >= 2


def _batch() -> dict:
    rng = np.random.default_rng(0)
    v1 = rng.random((GLOBAL_BATCH, SIZE, SIZE, 3), dtype=np.float32)
    v2 = np.clip(v1[:, :, ::-1] + 0.1 * rng.normal(size=v1.shape), 0.0, 1.0).astype("float32")
    crop = {v: rng.random((GLOBAL_BATCH, 4), dtype=np.float32) for v in ("v1", "v2")}
    return {"views": {"v1": v1, "v2": v2}, "params": {v: {"crop": crop[v]} for v in ("v1", "v2")}}


def _values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


def _max_diff(a, b) -> float:
    return max((float(np.max(np.abs(x - y))) for x, y in zip(a, b) if x.size), default=0.0)


def _train_one_step(model, strategy=None, run_eagerly=True, batch=None) -> dict:
    """Compiles (inside the strategy's scope when given), fits one step; returns what changed."""
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=False, run_eagerly=run_eagerly)
    dataset = tf.data.Dataset.from_tensor_slices(_batch() if batch is None else batch).batch(GLOBAL_BATCH)
    trainable = model.trainable_variables
    before = _values(trainable)
    history = model.fit(dataset, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    ids = {id(v) for v in trainable}
    return {
        "logs": {k: float(v[-1]) for k, v in history.history.items()},
        "grads": [b - a for b, a in zip(before, _values(trainable))],  # SGD(1.0): w_after = w_before - grad
        "others": _values([v for v in model.weights if id(v) not in ids]),
        "targets": _values([w for target, _ in model.ema_pairs() for w in target.weights]),
    }


def _replica_spread(model, strategy) -> float:
    """Largest difference between the mirrored copies of any variable (0 when they stay in sync)."""
    spread = 0.0
    for v in model.weights:
        local = [np.asarray(x) for x in strategy.experimental_local_results(v.value)]
        spread = max(spread, *(float(np.max(np.abs(x - local[0]))) for x in local if x.size))
    return spread


def compare(make, strategy, run_eagerly=True, batch=None) -> dict:
    """One `fit` step of `make()` on one device and on `strategy`, from the same initial weights.

    `batch`: the global batch (GLOBAL_BATCH examples of SIZE px); default `_batch()`.
    """
    keras.utils.set_random_seed(0)
    single = make()
    with strategy.scope():
        dist = make()
    assert [tuple(v.shape) for v in single.weights] == [tuple(v.shape) for v in dist.weights]
    dist.set_weights(single.get_weights())
    targets_before = _values([w for target, _ in single.ema_pairs() for w in target.weights])
    s, d = _train_one_step(single, None, run_eagerly, batch), _train_one_step(dist, strategy, run_eagerly, batch)
    assert sorted(s["logs"]) == sorted(d["logs"]), (s["logs"], d["logs"])
    return {
        "loss": s["logs"]["loss"],
        "loss_diff": max(abs(s["logs"][k] - d["logs"][k]) for k in s["logs"]),
        "logs": {k: (s["logs"][k], d["logs"][k]) for k in s["logs"]},
        "grad_diff": _max_diff(s["grads"], d["grads"]),
        "grad_max": max(float(np.max(np.abs(g))) for g in s["grads"]),
        "zero_grads": sum(1 for g in s["grads"] if not np.any(g)),
        "num_grads": len(s["grads"]),
        "other_weights_diff": _max_diff(s["others"], d["others"]),
        "target_diff": _max_diff(s["targets"], d["targets"]),
        "target_moved": _max_diff(s["targets"], targets_before),
        "replica_spread": _replica_spread(dist, strategy),
    }


def fresh_collective_keys() -> None:
    """Gives the next `MirroredStrategy` its own collective keys, as TF's own strategy tests do.

    Every `MirroredStrategy` numbers its collectives from the same class-level base, so a second
    strategy over the same devices in one process (e.g. tests/test_losses_distributed.py's, when
    pytest runs both modules) reuses keys of the first: TensorFlow aborts with "Collective
    instance ... expected type ..." when the same key meets a different collective.
    """
    if hasattr(tf.distribute.MirroredStrategy, "_collective_key_base"):
        tf.distribute.MirroredStrategy._collective_key_base += 100000


def compute_figures(names=None) -> dict:
    """Distributed vs single device, for every case and control (or those in `names`)."""
    tf.get_logger().setLevel("ERROR")
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    fresh_collective_keys()
    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == 2
    runs = {name: (make, True) for name, make in {**CASES, **CONTROLS}.items()}
    runs.update({f"{name}_tf_function": (CASES[name], False) for name in GRAPH_CASES})
    figures = {}
    for name, (make, run_eagerly) in runs.items():
        if names is not None and name not in names:
            continue
        start = time.perf_counter()
        figures[name] = compare(make, strategy, run_eagerly)
        figures[name]["seconds"] = round(time.perf_counter() - start, 2)
    return figures


@pytest.fixture(scope="module")
def figures():
    if _two_cpus():
        return compute_figures()
    # TensorFlow was initialised by an earlier test module: run the steps in a fresh process.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "-1",  # both runs on the CPU
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], capture_output=True, text=True, timeout=600, check=False, env=env
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the tests -------------------------------------------------------------------------------
def _grad_tol(f: dict) -> float:
    """1e-4, relative to the largest gradient when it exceeds 1 (VICReg/Barlow gradients reach ~70)."""
    return TOL * max(1.0, f["grad_max"])


def check_equal(f: dict, name: str) -> None:
    """Asserts the figures of `compare` show a distributed step equal to the single-device one."""
    assert f["loss_diff"] < TOL, f"{name}: logged losses differ (single, distributed): {f['logs']}"
    assert f["grad_diff"] < _grad_tol(f), f"{name}: applied gradients differ: {f}"
    assert f["grad_max"] > 1e-2, f"{name}: gradients too small for the comparison to mean anything: {f}"
    assert f["zero_grads"] == 0, f"{name}: some trainable variables got no gradient: {f}"
    assert f["other_weights_diff"] < TOL, f"{name}: BatchNorm statistics or EMA targets differ: {f}"
    assert f["replica_spread"] < 1e-6, f"{name}: mirrored copies of a variable diverged: {f}"


@pytest.mark.parametrize("name", sorted(CASES) + [f"{name}_tf_function" for name in GRAPH_CASES])
def test_train_step_two_replicas_equals_one_device(figures, name):
    check_equal(figures[name], name)


@pytest.mark.parametrize("name", ["byol", "byol_tf_function"])
def test_byol_ema_target_matches_one_device(figures, name):
    f = figures[name]
    assert f["target_moved"] > 1e-3, f"the EMA should move the target network (momentum 0.5): {f}"
    assert f["target_diff"] < TOL, f"EMA target weights differ after the step: {f}"


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_controls_differ(figures, name):
    f = figures[name]
    assert f["grad_diff"] > 10 * _grad_tol(f), f"{name}: the control should fail the comparison: {f}"


def compute_objective_figures(objective: str, batch: str) -> dict:
    """`compare` for `objective_case(module:function)` on the global batch `module:function(GLOBAL_BATCH, SIZE)`."""
    import importlib

    def load(ref):
        module, name = ref.split(":")
        return getattr(importlib.import_module(module), name)

    tf.get_logger().setLevel("ERROR")
    fresh_collective_keys()
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
    return compare(objective_case(load(objective)), strategy, batch=load(batch)(GLOBAL_BATCH, SIZE))


def _load(ref: str):
    import importlib

    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def compute_model_figures(make_model: str, batch: str) -> dict:
    """`compare` for any model `module:function()` (an `SSLModel`) on the batch `module:function(GLOBAL_BATCH, SIZE)`."""
    tf.get_logger().setLevel("ERROR")
    fresh_collective_keys()
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
    return compare(_load(make_model), strategy, batch=_load(batch)(GLOBAL_BATCH, SIZE))


if __name__ == "__main__":
    if not _two_cpus():
        sys.exit("could not configure two logical CPU devices")
    if sys.argv[1:2] == ["--objective"]:
        print(json.dumps(compute_objective_figures(*sys.argv[2:4])))
    elif sys.argv[1:2] == ["--model"]:
        print(json.dumps(compute_model_figures(*sys.argv[2:4])))
    else:
        print(json.dumps(compute_figures(sys.argv[1:] or None)))
