"""The training stream a config describes: batches of views (pairs, multi-crops), resumable at any step."""

from __future__ import annotations

import os

import tensorflow as tf

from keras_eqssl.augment.policies import policy_from_config, rotated_pair
from keras_eqssl.data.sharding import (
    local_batch_size,
    marked_sharded,
    regroup_for_workers,
    several_workers,
    shard_items,
    shard_rows,
)
from keras_eqssl.errors import ConfigError


def threedie_root(config, progress: bool = True) -> str:
    """`config.data.threedie.root`, or the cached procedural mini-3DIEBench (rendered on first use)."""
    t = config.data.threedie
    if t.root:
        if not os.path.isdir(t.root):
            raise ConfigError(
                f"config.data.threedie.root={t.root!r} is not a directory; give a 3DIEBench-format root, or '' for "
                "the rendered mini-3DIEBench"
            )
        return t.root
    from keras_eqssl.data.render.dataset import cached_render

    cache = os.environ.get("KERAS_EQSSL_CACHE") or t.cache_dir
    root, rendered = cached_render(cache, t.num_objects, t.views, t.render_size, seed=config.seed, progress=progress)
    if rendered:
        print(f"rendered a mini-3DIEBench ({t.num_objects} objects x {t.views} views, {t.render_size} px) into {root}")
    return str(root)


def train_batches(
    config,
    first_step: int = 0,
    split: str = "train",
    progress: bool = True,
    workers: tf.distribute.InputContext | None = None,
):
    """The stream of training batches for `config`, starting at step `first_step`.

    Batch k (counting from 0 at the start of the run) is a pure function of (config, k): a run
    resumed at step s with `first_step=s` sees exactly the batches an uninterrupted run would
    have seen from step s on (same images, same augmentation parameters).

    - `config.data.source == "threedie"`: pairs of two renders of one object from a
      3DIEBench-format root (`threedie_root`), resized to `config.augment.size`, with
      `rel_rotation`, `rel_color`, `latent` and `label`. `config.augment.policy` is applied to
      the renders only when `config.data.threedie.augment_renders`; otherwise each render gets
      only an in-plane rotation of up to `config.data.threedie.rotation` degrees (0 = none).
    - any image source: `config.augment.policy` makes the pair of views of each image (and any
      other views it makes, e.g. the `essl` policy's rotated crops), and their parameters are
      recorded under `"params"`.

    Under a multi-worker strategy (`workers`: this worker's input context, see
    `keras_eqssl.data.sharding`), a file-based source (image folder, tfds, a 3DIEBench root) is
    read in shards: each worker decodes only its files and makes `batch_size / workers` rows for
    each step (batch k of worker w a pure function of (config, k, w, workers)); any other source
    makes the same global batches on every worker, which keeps its replicas' rows.

    Returns:
        (dataset, param_specs): an infinite dataset of batches in the architecture's batch format
        (`config.data.batch_size` examples each), and the policy's `ParamSpec`s of every view it
        makes (None when no policy runs); the model keeps those of the views it trains on.
    """
    if config.data.source == "threedie":
        ds, specs = _threedie_batches(config, first_step, split, progress, workers)
    else:
        ds, specs = _image_batches(config, first_step, workers)
    if marked_sharded(ds):
        return regroup_for_workers(ds, workers), specs
    return (shard_rows(ds) if several_workers(workers) else ds), specs


def _threedie_batches(config, first_step: int, split: str, progress: bool, workers):
    """Batches of 3DIEBench pairs: this worker's objects' (`config.data.batch_size / workers` rows) when sharded."""
    from keras_eqssl.data.threedie import threedie_pairs
    from keras_eqssl.data.threedie_index import list_objects

    root = threedie_root(config, progress=progress)
    objects = list_objects(root, split, check_files=True, skip_bad=config.data.skip_bad)
    sharded = shard_items(range(len(objects)), workers) is not None
    batch = local_batch_size(config.data.batch_size, workers) if sharded else config.data.batch_size
    t = config.data.threedie
    resize = not t.augment_renders  # the policy's crop makes views of augment.size
    policy = (
        policy_from_config(config.augment)
        if t.augment_renders
        else (rotated_pair(t.rotation) if t.rotation > 0 else None)
    )
    ds = threedie_pairs(
        root,
        split,
        seed=config.seed,
        num_epochs=None,
        image_size=config.augment.size if resize else None,
        batch_size=batch,
        augment=policy,
        skip=first_step * batch,
        first_step=first_step,
        skip_bad=config.data.skip_bad,
        objects=objects,
        workers=workers if sharded else None,
    )
    return ds, (None if policy is None else policy.param_specs())


def _image_batches(config, first_step: int, workers):
    """Batches of views of the source's images: this worker's shard's (`batch_size / workers` rows) when sharded."""
    from keras_eqssl.data import source_from_config
    from keras_eqssl.data.pipeline import view_batches

    policy = policy_from_config(config.augment)
    images = source_from_config(config, workers=workers)
    sharded = marked_sharded(images)
    batch = local_batch_size(config.data.batch_size, workers) if sharded else config.data.batch_size
    images = images.repeat()
    if first_step:
        images = images.skip(first_step * batch)
    replica = workers.input_pipeline_id if sharded else 0
    ds = view_batches(images, policy, batch, seed=config.seed, replica=replica, first_step=first_step)
    return ds, policy.param_specs()


def first_batch(dataset: tf.data.Dataset) -> dict:
    """The first batch, or a clear error when the stream is empty."""
    for batch in dataset.take(1):
        return batch
    raise ConfigError(
        "the training stream is empty: the data source has fewer images than one batch (config.data.batch_size); "
        "lower the batch size or add images"
    )
