"""Replica-aware helpers: global batch statistics and the loss-scaling convention under `tf.distribute`.

Convention (the same as Keras's own `compile()` losses under `tf.distribute`):

    inside `strategy.run` with R replicas, every loss returns  global_loss / R,
    the same value on every replica.

`tf.distribute` (and Keras optimizers) **sum** the per-replica gradients, so the applied gradient
is R * d(global_loss / R) = d(global_loss): the single-device gradient of the same global batch.
For logging, multiply by R (`unscale`) or reduce the per-replica values with `ReduceOp.SUM`.

Why the gradients are right: `ReplicaContext.all_gather` and `all_reduce` have gradients in TF
(the gradient of an all-gather is an all-reduce SUM of the upstream gradients, sliced back to the
local rows; the gradient of an all-sum is an all-sum). A replica's embeddings therefore receive
the gradient of *every* replica's loss through the gather, which sums to d(global_loss)/dz_local.

Outside a replica context (no strategy, the default strategy, a one-replica strategy, or the
cross-replica context) every helper is the identity and the losses are the plain single-device
versions.
"""

from __future__ import annotations

import tensorflow as tf


def replica_context() -> tf.distribute.ReplicaContext | None:
    """The current replica context when there is more than one replica in sync, else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx


def num_replicas() -> int:
    """Number of replicas in sync in the current replica context (1 outside one)."""
    ctx = replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def all_gather(x: tf.Tensor) -> tf.Tensor:
    """Concatenates `x` over replicas along axis 0, in replica order (differentiable).

    Shapes: `(n_local, ...)` -> `(n_global, ...)`; replicas may hold different `n_local`.
    """
    ctx = replica_context()
    return x if ctx is None else ctx.all_gather(x, axis=0)


def all_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum of `x` over replicas (differentiable); the identity outside a replica context."""
    ctx = replica_context()
    return x if ctx is None else ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)


def global_offset(n_local: tf.Tensor) -> tf.Tensor:
    """Global row index of this replica's first example (int32 scalar); 0 outside a replica context.

    Works with uneven splits: the local batch sizes are gathered, and the sizes of the replicas
    before this one are summed.
    """
    ctx = replica_context()
    if ctx is None:
        return tf.constant(0, tf.int32)
    sizes = ctx.all_gather(tf.reshape(tf.cast(n_local, tf.int32), [1]), axis=0)
    return tf.reduce_sum(sizes[: ctx.replica_id_in_sync_group])


def scale(global_loss: tf.Tensor) -> tf.Tensor:
    """`global_loss / R`: what a replica returns so that summed gradients equal the single-device ones."""
    r = num_replicas()
    return global_loss if r == 1 else global_loss / tf.cast(r, global_loss.dtype)


def unscale(loss: tf.Tensor) -> tf.Tensor:
    """`loss * R`: the global loss back from a per-replica loss value, for logging."""
    r = num_replicas()
    return loss if r == 1 else loss * tf.cast(r, loss.dtype)


def global_mean(local_sum: tf.Tensor, local_count) -> tf.Tensor:
    """Mean over the global batch from a local sum and count, scaled by the convention (`/ R`).

    Used by losses that are a plain mean over examples (negative cosine, MSE): only two scalars
    cross replicas, and uneven splits are weighted correctly.
    """
    count = tf.cast(local_count, local_sum.dtype)
    return scale(all_sum(local_sum) / all_sum(count))
