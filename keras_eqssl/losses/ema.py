"""The EMA target network of BYOL: the momentum schedule and the update."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf


def byol_momentum(step, total_steps, base: float = 0.996) -> tf.Tensor:
    """Cosine momentum schedule of BYOL (Grill et al., NeurIPS 2020, section 3.2):

        tau(k) = 1 - (1 - tau_base) * (cos(pi * k / K) + 1) / 2

    rising from `base` at step 0 to 1 at step K = `total_steps` (k is clipped to [0, K]).

    Args:
        step: current step k (int or scalar tensor).
        total_steps: total number of steps K > 0.
        base: tau_base in [0, 1]; BYOL uses 0.996 (0.99 for small batches).

    Returns:
        Scalar float32 tensor.

    Example:
    >>> [round(float(byol_momentum(k, 10)), 4) for k in (0, 5, 10)]
    [0.996, 0.998, 1.0]
    """
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"byol_momentum: base must be in [0, 1]; received base={base}.")
    if isinstance(total_steps, int | float) and total_steps <= 0:
        raise ValueError(f"byol_momentum: total_steps must be > 0; received total_steps={total_steps}.")
    k = tf.cast(step, tf.float32)
    total = tf.cast(total_steps, tf.float32)
    k = tf.clip_by_value(k, 0.0, total)
    return 1.0 - (1.0 - base) * (tf.cos(math.pi * k / total) + 1.0) / 2.0


def _tf_variable(v):
    return v.value if isinstance(v, keras.Variable) else v


def _ema(target, online, momentum):
    new = momentum * tf.cast(target, tf.float32) + (1.0 - momentum) * tf.cast(online, tf.float32)
    return target.assign(tf.cast(new, target.dtype))


def ema_update(target_vars: Sequence, online_vars: Sequence, momentum) -> None:
    """Moves each target variable towards its online twin (BYOL eq. 1, the target network update):

        xi <- tau * xi + (1 - tau) * theta

    Under `tf.distribute` inside `strategy.run`, the update runs once in the cross-replica
    context (`merge_call` + `extended.update`), so mirrored target variables stay in sync without
    needing an aggregation mode. Call it after the optimizer step, with the online weights it
    produced.

    Args:
        target_vars: target (EMA) variables xi, e.g. `target_model.weights` (keras.Variable or
            tf.Variable).
        online_vars: online variables theta, in the same order and of the same shapes.
        momentum: tau in [0, 1] (float or scalar tensor, e.g. `byol_momentum(step, total)`).

    Example:
    >>> import keras
    >>> target, online = keras.Variable([0.0, 0.0]), keras.Variable([1.0, 2.0])
    >>> ema_update([target], [online], 0.9)
    >>> [round(float(x), 4) for x in target.numpy()]
    [0.1, 0.2]
    """
    target_vars, online_vars = list(target_vars), list(online_vars)
    if len(target_vars) != len(online_vars):
        raise ValueError(
            f"ema_update: got {len(target_vars)} target variables and {len(online_vars)} online variables; "
            "they must pair up one to one."
        )
    for i, (t, o) in enumerate(zip(target_vars, online_vars)):
        if tuple(t.shape) != tuple(o.shape):
            raise ValueError(
                f"ema_update: variable {i} ({getattr(t, 'path', getattr(t, 'name', '?'))}) has target shape "
                f"{tuple(t.shape)} but online shape {tuple(o.shape)}."
            )
    if isinstance(momentum, int | float) and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"ema_update: momentum must be in [0, 1]; received momentum={momentum}.")
    momentum = tf.cast(momentum, tf.float32)
    targets = [_tf_variable(v) for v in target_vars]
    onlines = [_tf_variable(v) for v in online_vars]

    if not tf.distribute.has_strategy():
        for t, o in zip(targets, onlines):
            _ema(t, o, momentum)
        return

    def update(strategy, targets, onlines, momentum):
        for t, o in zip(targets, onlines):
            strategy.extended.update(t, _ema, args=(o, momentum))

    ctx = tf.distribute.get_replica_context()
    if ctx is not None:  # inside `strategy.run`: update once, from the cross-replica context
        ctx.merge_call(update, args=(targets, onlines, momentum))
    else:  # cross-replica context, e.g. directly inside `strategy.scope()`
        update(tf.distribute.get_strategy(), targets, onlines, momentum)


def ema_copy(layer: keras.Layer, name: str | None = None) -> keras.Layer:
    """A new layer of the same class and config as `layer`, with a copy of its weights: an EMA teacher.

    The copy starts equal to `layer` (the teacher at step 0); `ema_update` moves it afterwards.
    The layer must be built (its weights exist) and serialisable with `get_config`.

    Example:
    >>> import keras, numpy as np
    >>> online = keras.layers.Dense(2)
    >>> online.build((None, 3))
    >>> teacher = ema_copy(online, "teacher_dense")
    >>> teacher.name, bool(np.array_equal(teacher.kernel.numpy(), online.kernel.numpy()))
    ('teacher_dense', True)
    """
    config = layer.get_config()
    config["name"] = name or f"teacher_{layer.name}"
    copy = type(layer).from_config(config)
    shapes = getattr(layer, "_build_shapes_dict", None)
    if not copy.built and shapes:
        copy.build(**shapes)
    if len(copy.weights) != len(layer.weights):
        raise ValueError(
            f"ema_copy: the copy of {layer.name} has {len(copy.weights)} weights but the layer has {len(layer.weights)}; "
            "build the layer before copying it."
        )
    for t, o in zip(copy.weights, layer.weights):
        t.assign(o)
    return copy
