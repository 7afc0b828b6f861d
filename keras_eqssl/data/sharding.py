"""Each worker of a multi-worker run reads its own share of a file-based source.

A file-based source (image folder, prepared tfds data set, 3DIEBench) given a
`tf.distribute.InputContext` keeps the items `i` with `i % num_input_pipelines ==
input_pipeline_id` of its sorted listing (files, objects; tfds: `tfds.even_splits`) before it
shuffles, decodes or augments anything, so the workers decode disjoint shards that together cover
the data set. Each worker then makes batches of `B / workers` rows for each step (the policy's
seeds fold in the worker index as the replica), and `regroup_for_workers` stacks `workers` such
consecutive batches into one batch of the global size B, the batch `tf.distribute` splits over
the worker's replicas with auto-sharding off: at step k every worker trains on its own local
batch k. Batch k of worker w is then a pure function of (config, k, w, workers), so a resumed
run with the same number of workers sees what an uninterrupted one would.

A source with fewer items than workers is not sharded: every worker makes the same global
batches and keeps its replicas' rows (`AutoShardPolicy.DATA`), as for the generated sources.
One process (no input context, or one input pipeline) reads exactly as without this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from keras_eqssl.distribute import COLLECTIVE_JOBS


def worker_input_context(strategy: tf.distribute.Strategy) -> tf.distribute.InputContext | None:
    """This worker's `InputContext` (pipelines = workers) under a multi-worker strategy of more than
    one worker; None for every other strategy (one process reads everything)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return None
    spec = resolver.cluster_spec().as_dict()
    sizes = {job: len(spec.get(job, ())) for job in COLLECTIVE_JOBS}
    workers = sum(sizes.values())
    if workers < 2:
        return None
    before = sum(sizes[job] for job in COLLECTIVE_JOBS[: COLLECTIVE_JOBS.index(resolver.task_type)])
    return tf.distribute.InputContext(workers, before + int(resolver.task_id), strategy.num_replicas_in_sync)


def several_workers(workers: tf.distribute.InputContext | None) -> bool:
    """Whether `workers` is the context of one of several input pipelines (workers)."""
    return workers is not None and workers.num_input_pipelines > 1


def shard_items(items: Sequence, workers: tf.distribute.InputContext | None) -> list | None:
    """This worker's items of a listing (`items[id::pipelines]`), or None when the listing is not
    sharded (no context, one pipeline, or fewer items than pipelines).

    >>> ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
    >>> shard_items(["a", "b", "c", "d", "e"], ctx)
    ['b', 'd']
    >>> shard_items(["a"], ctx) is None
    True
    """
    if not several_workers(workers) or len(items) < workers.num_input_pipelines:
        return None
    return list(items[workers.input_pipeline_id :: workers.num_input_pipelines])


def _with_auto_shard(dataset: tf.data.Dataset, policy) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def mark_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with `tf.distribute`'s auto-sharding off: it already holds this worker's shard."""
    return _with_auto_shard(dataset, tf.data.experimental.AutoShardPolicy.OFF)


def shard_rows(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` (the same global batches on every worker) split by rows: each worker keeps its replicas'."""
    return _with_auto_shard(dataset, tf.data.experimental.AutoShardPolicy.DATA)


def marked_sharded(dataset: tf.data.Dataset) -> bool:
    """Whether a source already holds one worker's shard (`mark_sharded` somewhere in its pipeline)."""
    policy = dataset.options().experimental_distribute.auto_shard_policy
    return policy == tf.data.experimental.AutoShardPolicy.OFF


def local_batch_size(batch_size: int, workers: tf.distribute.InputContext) -> int:
    """The rows one worker makes for each step: `batch_size / workers`, which must divide evenly."""
    count = workers.num_input_pipelines
    if batch_size % count:
        raise ValueError(f"config.data.batch_size={batch_size} does not split evenly over {count} workers.")
    return batch_size // count


def local_rows(batches: tf.data.Dataset) -> int:
    """The static number of rows of a dataset's batches (its first leaf's leading dimension)."""
    rows = tf.nest.flatten(batches.element_spec)[0].shape[0]
    if rows is None:
        raise ValueError("regroup_for_workers needs batches of a static size (drop_remainder=True).")
    return int(rows)


def regroup_for_workers(batches: tf.data.Dataset, workers: tf.distribute.InputContext) -> tf.data.Dataset:
    """Stacks `workers` consecutive local batches (B / workers rows each) into one of B rows.

    `tf.distribute` splits each batch of a worker's dataset into `workers x replicas_per_worker`
    equal pieces and hands `replicas_per_worker` of them to the worker's replicas at each step, so
    local batch k trains at step k. (The stacking is a `batch` of B, the last one `tf.distribute`
    looks for.)
    """
    size = workers.num_input_pipelines * local_rows(batches)
    grouped = batches.unbatch().batch(size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)
    return mark_sharded(grouped.prefetch(tf.data.AUTOTUNE))
