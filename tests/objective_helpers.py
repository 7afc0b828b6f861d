"""`run_objective_test`: the contract every `Objective` meets (as `run_op_test` is for augment ops).

An objective's test gives two module-level functions (module-level so a fresh interpreter can
import them for the 2-replica check):

    make_objective(synchronized: bool) -> Objective      small heads
    make_batch(batch: int, size: int) -> dict             a pair batch with what the objective reads
                                                          (params, rel_rotation, extra views, ...)

and `run_objective_test(make_objective, make_batch, tmp_path)` checks, on a tiny ResNet:

1. the objective is registered under its `short_name`, and its config section round-trips:
   `from_config_section(config_section())` builds it (with `config`'s other sections, default
   the default config);
2. its outputs are `term_names()` (with "total"), float32 finite scalars, and the model's metrics
   carry them (`<short_name>`, `<short_name>_<term>`);
3. gradients of its total alone reach every backbone variable (none, with `reaches_backbone=False`:
   a monitor such as the online probe) and every variable of its own;
4. the `PairModel` contract with it (`run_pair_model_test`: fit, evaluate, `.keras` save/load,
   `get_config` round trip);
5. with `replicas=True`: one training step on two replicas (ViT-tiny, synchronised heads) equals
   the step on one device (`tests/test_methods_distributed.py`, in a fresh interpreter).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from method_helpers import TINY_SIZE, as_tensors, make_pair_model, run_pair_model_test

from keras_eqssl.default_config import get_config
from keras_eqssl.methods import OBJECTIVES, Objective
from keras_eqssl.methods.objectives.base import TOTAL

TESTS = os.path.dirname(os.path.abspath(__file__))


def _ref(fn) -> str:
    assert "<" not in fn.__qualname__, f"{fn.__qualname__}: pass a module-level function (the subprocess imports it)"
    return f"{fn.__module__}:{fn.__qualname__}"


def check_registered(objective: Objective, config=None) -> None:
    cls = type(objective)
    assert OBJECTIVES.get(cls.short_name) is cls, f"{cls.__name__} is not registered as {cls.short_name!r}"
    section = get_config().model[cls.short_name]
    fields = {k: v for k, v in section.to_dict().items() if k != "enabled"}
    assert fields == cls.config_arguments(), "the default config's section is not config_arguments()"
    built = cls.from_config_section(section, get_config() if config is None else config)
    assert type(built) is cls


def check_gradients(model, batch, reaches_backbone: bool = True) -> dict:
    """Gradients of the objective's own total reach the backbone (or, not `reaches_backbone`, none
    of it) and the objective's variables."""
    objective = model.objectives[0]
    with tf.GradientTape() as tape:
        pair = model.pair_outputs(as_tensors(batch), training=True)
        out = objective(pair, training=True)
    assert sorted(out) == sorted(objective.term_names()), f"outputs {sorted(out)} != {objective.term_names()}"
    assert TOTAL in out
    for name, value in out.items():
        assert value.dtype == tf.float32 and value.shape.rank == 0, f"{name}: {value.dtype} {value.shape}"
        assert np.isfinite(float(value)), f"{name} = {float(value)}"
    backbone = model.backbone.trainable_variables
    variables = [*(backbone if reaches_backbone else []), *objective.trainable_variables]
    grads = tape.gradient(out[TOTAL], [*variables, *([] if reaches_backbone else backbone)])
    dead = [v.path for v, g in zip(variables, grads) if g is None or not np.any(np.asarray(g))]
    assert not dead, f"no gradient from {objective.short_name}'s total reaches {dead}"
    reached = [v.path for v, g in zip(backbone, grads[len(variables) :]) if g is not None]
    assert not reached, f"{objective.short_name}'s total must not reach the backbone; it reaches {reached}"
    return {k: float(v) for k, v in out.items()}


def check_two_replicas(make_objective, make_batch, mode: str = "--objective") -> dict:
    """One step on two replicas equals one device (a fresh interpreter with two logical CPUs).

    `mode="--objective"`: `make_objective(synchronized)` joins the standard `PairModel`;
    `mode="--model"`: `make_objective()` is the whole model (e.g. a `TeacherStudentModel`).
    """
    from test_methods_distributed import check_equal

    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "-1",
        "PYTHONPATH": os.pathsep.join([TESTS, os.path.dirname(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    script = os.path.join(TESTS, "test_methods_distributed.py")
    proc = subprocess.run(
        [sys.executable, script, mode, _ref(make_objective), _ref(make_batch)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    check_equal(figures, make_objective.__module__)
    return figures


def run_objective_test(
    make_objective,
    make_batch,
    tmp_path,
    invariance: str = "simclr",
    split=(8, 8),
    batch_size: int = 4,
    replicas: bool = True,
    config=None,
    reaches_backbone: bool = True,
    **model_kwargs,
) -> dict:
    """Runs the checks of the module docstring; returns the figures (terms, and the 2-replica comparison)."""
    objective = make_objective(False)
    check_registered(objective, config)
    model = make_pair_model(invariance, objectives=[objective], split=split, **model_kwargs)
    batch = make_batch(2 * batch_size, TINY_SIZE)
    terms = check_gradients(model, batch, reaches_backbone)
    prefix = objective.short_name
    expected = {prefix if t == TOTAL else f"{prefix}_{t}" for t in objective.term_names()}
    assert expected <= set(model.term_names()), (expected, model.term_names())
    run_pair_model_test(model, batch, tmp_path, batch_size=batch_size)
    figures = {"terms": terms}
    if replicas:
        figures["replicas"] = check_two_replicas(make_objective, make_batch)
    return figures
