"""The one shared check that every loss test reuses (keras-hub's `run_*_test` style).

`run_loss_test(fn, args, ...)` checks the contract of `keras_eqssl.losses`:

- every output (a scalar, or each value of a dict) is a float32 scalar, finite, and equals
  `expected` (a hand computation in NumPy) when one is given;
- graph mode (`tf.function`) gives the same values as eager;
- float16 and bfloat16 inputs give float32 outputs equal to the float32 loss of the same
  (rounded) inputs: the math runs in float32 under mixed precision;
- gradients are finite and non-zero for `grad_args`, and absent or zero for `no_grad_args`
  (stop-gradient targets);
- permuting the batch (the same permutation for every argument) leaves the loss unchanged;
- each of `bad_args` raises a ValueError whose message matches `bad_match`.

`distributed_step` runs one loss+gradient step of a small model on a `tf.distribute` strategy and
on one device with the same global batch; tests/test_losses_distributed.py compares the two.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

ALL_CHECKS = ("value", "graph", "mixed_precision", "gradients", "permutation", "bad_input")


# --- small utilities -------------------------------------------------------------------------
def as_dict(out) -> dict:
    return dict(out) if isinstance(out, dict) else {"loss": out}


def to_numpy(out) -> dict:
    return {k: np.asarray(v) for k, v in as_dict(out).items()}


def assert_outputs_close(a, b, atol: float, rtol: float = 0.0, what: str = "outputs"):
    a, b = to_numpy(a), to_numpy(b)
    assert sorted(a) == sorted(b), f"{what}: keys differ: {sorted(a)} vs {sorted(b)}"
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=atol, rtol=rtol, err_msg=f"{what}[{key!r}]")


def _map_arrays(fn, args):
    """Applies `fn` to every float or int array in a (nested) tuple/dict of arguments."""
    return tf.nest.map_structure(lambda x: fn(np.asarray(x)), args)


def _cast_floats(args, dtype):
    return tf.nest.map_structure(
        lambda x: tf.cast(x, dtype) if np.asarray(x).dtype.kind == "f" else tf.convert_to_tensor(x), args
    )


def _total(out):
    out = as_dict(out)
    return out["total"] if "total" in out else out["loss"]


# --- the contract check ----------------------------------------------------------------------
def run_loss_test(
    fn,
    args: tuple,
    kwargs: dict | None = None,
    *,
    expected=None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    grad_args: tuple[int, ...] = (0, 1),
    no_grad_args: tuple[int, ...] = (),
    permutable: bool = True,
    bad_args: list[tuple] = (),
    bad_match: str = "received",
    checks: tuple[str, ...] = ALL_CHECKS,
):
    """Checks a loss function against the losses contract; returns its eager output.

    Args:
        fn: the loss, `fn(*args, **kwargs)` -> scalar or dict of scalars.
        args: positional arguments as NumPy arrays (or dicts of arrays), batch first.
        kwargs: keyword arguments (not arrays).
        expected: hand-computed value (float, or dict of floats matching the output keys).
        grad_args: indices of `args` that must receive finite, non-zero gradients.
        no_grad_args: indices of `args` that must receive no gradient (stop-gradient targets).
        permutable: the loss is invariant to permuting the batch of every argument together.
        bad_args: argument tuples that must raise ValueError (same kwargs).
        bad_match: regex the ValueError message must match.
        checks: which of `ALL_CHECKS` to run.
    """
    kwargs = dict(kwargs or {})
    tensors = _cast_floats(args, tf.float32)
    out = fn(*tensors, **kwargs)

    # value: float32 scalars, finite, equal to the hand computation
    for key, v in as_dict(out).items():
        assert v.dtype == tf.float32, f"{key}: dtype {v.dtype.name}, expected float32"
        assert v.shape == (), f"{key}: shape {v.shape}, expected a scalar"
        assert np.isfinite(v.numpy()), f"{key}: not finite ({v.numpy()})"
    if "value" in checks and expected is not None:
        exp = expected if isinstance(expected, dict) else {"loss": expected}
        assert_outputs_close(out, {k: np.float32(v) for k, v in exp.items()}, atol, rtol, "value vs hand computation")

    if "graph" in checks:
        graph_out = tf.function(lambda *a: fn(*a, **kwargs))(*tensors)
        assert_outputs_close(graph_out, out, atol=1e-6, rtol=1e-6, what="graph vs eager")

    if "mixed_precision" in checks:
        for dtype in (tf.float16, tf.bfloat16):
            low = _cast_floats(args, dtype)
            low_out = fn(*low, **kwargs)
            for key, v in as_dict(low_out).items():
                assert v.dtype == tf.float32, f"{dtype.name} inputs: {key} has dtype {v.dtype.name}, expected float32"
            rounded = tf.nest.map_structure(lambda x: tf.cast(x, tf.float32) if x.dtype == dtype else x, low)
            assert_outputs_close(low_out, fn(*rounded, **kwargs), 1e-5, 1e-5, f"{dtype.name} inputs vs float32 math")

    if "gradients" in checks and (grad_args or no_grad_args):
        watched = [i for i in (*grad_args, *no_grad_args)]
        variables = {i: tf.nest.map_structure(tf.Variable, tensors[i]) for i in watched}
        call_args = [variables.get(i, t) for i, t in enumerate(tensors)]
        with tf.GradientTape() as tape:
            total = _total(fn(*call_args, **kwargs))
        grads = tape.gradient(total, variables)
        for i in grad_args:
            for g in tf.nest.flatten(grads[i]):
                assert g is not None, f"argument {i}: no gradient"
                g = np.asarray(g)
                assert np.all(np.isfinite(g)), f"argument {i}: non-finite gradient"
                assert np.any(g != 0), f"argument {i}: gradient is all zero"
        for i in no_grad_args:
            for g in tf.nest.flatten(grads[i], expand_composites=False):
                assert g is None or not np.any(np.asarray(g)), f"argument {i}: expected no gradient, got {g}"

    if "permutation" in checks and permutable:
        batch = len(tf.nest.flatten(args)[0])
        perm = np.random.default_rng(1).permutation(batch)
        permuted = _cast_floats(_map_arrays(lambda x: x[perm], args), tf.float32)
        assert_outputs_close(fn(*permuted, **kwargs), out, atol=1e-5, rtol=1e-5, what="permuted batch")

    if "bad_input" in checks:
        for bad in bad_args:
            with pytest.raises(ValueError, match=bad_match):
                fn(*_cast_floats(bad, tf.float32), **kwargs)
    return out


# --- distributed vs single device ------------------------------------------------------------
def distributed_step(strategy, build, forward, loss_fn, batch: tuple, splits: list[int]):
    """One loss+gradient step on `strategy` (global batch split as `splits`) and on one device.

    Args:
        strategy: a multi-replica `tf.distribute` strategy.
        build: `() -> list of keras layers`; called once inside `strategy.scope()` and once outside,
            with weights copied so both models are identical.
        forward: `(layers, *batch) -> loss arguments`.
        loss_fn: `(*loss arguments) -> scalar or dict` (the gradient is taken of "total" for dicts).
        batch: global batch, a tuple of NumPy arrays (batch first).
        splits: rows per replica, summing to the global batch size.

    Returns:
        dict with the single-device outputs and gradients, the per-replica outputs, and the
        gradients summed over replicas (what `tf.distribute` applies).
    """
    assert sum(splits) == len(batch[0]), (splits, len(batch[0]))
    single_layers = build()
    with strategy.scope():
        dist_layers = build()
    for src, dst in zip(single_layers, dist_layers):
        dst.set_weights(src.get_weights())

    def step(layers, *xs):
        variables = [v for layer in layers for v in layer.trainable_variables]
        with tf.GradientTape() as tape:
            out = loss_fn(*forward(layers, *xs))
        return out, tape.gradient(_total(out), variables)

    single_out, single_grads = tf.function(lambda *xs: step(single_layers, *xs))(*[tf.constant(x) for x in batch])

    bounds = np.cumsum([0, *splits])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(
            tf.constant(x[bounds[ctx.replica_id_in_sync_group] : bounds[ctx.replica_id_in_sync_group + 1]])
            for x in batch
        )
    )

    @tf.function
    def dist_step(xs):
        out, grads = strategy.run(lambda xs: step(dist_layers, *xs), args=(xs,))
        summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]
        return out, summed

    dist_out, summed_grads = dist_step(per_replica)
    replica_outs = [
        {k: np.asarray(v) for k, v in zip(as_dict(dist_out), vals)}
        for vals in zip(*[strategy.experimental_local_results(v) for v in as_dict(dist_out).values()])
    ]
    return {
        "single": to_numpy(single_out),
        "single_grads": [np.asarray(g) for g in single_grads],
        "replicas": replica_outs,
        "summed_grads": [np.asarray(g) for g in summed_grads],
    }
