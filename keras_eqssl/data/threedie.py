"""3DIEBench as a `tf.data` pipeline of view pairs of the same object, with SIE's targets.

Each element (one object, one epoch):

    {"views":  {"v1": (H, W, 3) uint8, "v2": (H, W, 3) uint8},   two distinct renders
     "latent": {"v1": (7,) float32,     "v2": (7,) float32},
     "rel_rotation": (4,) float32   quaternion (x, y, z, w) of R1^-1 R2, as SIE, not sign-canonicalised
     "rel_color":    (2,) float32   latent2[[3, 6]] - latent1[[3, 6]] (floor hue, spot-light hue)
     "label":        () int64}

As SIE's `__getitem__`, each epoch draws one pair of distinct views per object; here the draw is a
pure function of (seed, epoch, object index in the split file), and so is the per-epoch object
order when `shuffle=True` (`tf.random.experimental.index_shuffle`, no buffer). Everything streams:
only the listing (object paths, labels, view counts) is held in memory; images and latents are read
per element with `tf.io.read_file`, the latent's `.npy` header parsed in the graph, JPEGs decoded
with AUTOTUNE parallelism. Bad files raise errors that name them (see `threedie_index`).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from keras_eqssl.augment.seeds import fold
from keras_eqssl.data.image_files import decode_jpeg_checked
from keras_eqssl.data.quaternions import relative_rotation
from keras_eqssl.data.sharding import mark_sharded, shard_items
from keras_eqssl.data.threedie_index import LATENT_SIZE, ThreeDIEObjects, list_objects

COLOR_INDICES = (3, 6)  # floor hue, spot-light hue
VIEW_NAMES = ("v1", "v2")
# SIE's normalisation of 3DIEBench images (facebookresearch/SIE), for images in [0, 1].
THREEDIE_MEAN = (0.5016, 0.5037, 0.5060)
THREEDIE_STD = (0.1030, 0.0999, 0.0969)
_SHUFFLE_SALT = 0x3D1E


def normalize_3diebench(images: tf.Tensor) -> tf.Tensor:
    """SIE's normalisation: uint8 or [0, 1] float images (..., 3) -> float32 `(x - mean) / std`."""
    images = tf.convert_to_tensor(images)
    x = tf.cast(images, tf.float32) / 255.0 if images.dtype == tf.uint8 else tf.cast(images, tf.float32)
    return (x - tf.constant(THREEDIE_MEAN)) / tf.constant(THREEDIE_STD)


def sample_pair(seed: int, epoch: tf.Tensor, index: tf.Tensor, num_views: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Two distinct view indices of one object, a pure function of (seed, epoch, index).

    Args:
        seed: the run's seed.
        epoch, index: scalar integer tensors; index is the object's position in the split file.
        num_views: scalar int, V >= 2.

    Returns:
        (i, j): scalar int32, 0 <= i, j < V, i != j, each pair equally likely.
    """
    s = fold(seed, epoch, index)
    v = tf.cast(num_views, tf.int32)
    i = tf.random.stateless_uniform([], fold(s, 1), minval=0, maxval=v, dtype=tf.int32)
    j = tf.random.stateless_uniform([], fold(s, 2), minval=0, maxval=v - 1, dtype=tf.int32)
    return i, j + tf.cast(j >= i, tf.int32)


def pair_element(images: tuple, latents: tuple, label: tf.Tensor, image_size: int | None = None) -> dict:
    """The pair element from two decoded views and their latents (shared by the raw and tfds paths).

    Args:
        images: two (H, W, 3) uint8.
        latents: two (7,) float32.
        label: scalar int.
        image_size: resize both views to (S, S) (antialiased) when given.

    Returns:
        The element described in the module doc.
    """
    if image_size is not None:
        images = tuple(
            tf.cast(
                tf.clip_by_value(tf.round(tf.image.resize(x, (image_size, image_size), antialias=True)), 0, 255),
                tf.uint8,
            )
            for x in images
        )
    l1, l2 = latents
    rotation = relative_rotation(tf.cast(l1, tf.float64), tf.cast(l2, tf.float64))
    color = tf.gather(l2, COLOR_INDICES) - tf.gather(l1, COLOR_INDICES)
    return {
        "views": dict(zip(VIEW_NAMES, images)),
        "latent": {"v1": l1, "v2": l2},
        "rel_rotation": tf.cast(rotation, tf.float32),
        "rel_color": color,
        "label": tf.cast(label, tf.int64),
    }


def parse_latent(contents: tf.Tensor, path: tf.Tensor, dtype: str = "float32") -> tf.Tensor:
    """Parses a `.npy` file of 7 little-endian floats in the graph; errors name `path`.

    Args:
        contents: scalar string, the file's bytes (version 1.0 header: 10 + header-length bytes).
        path: scalar string, for the error message.
        dtype: "float32" or "float64", the stored dtype.

    Returns:
        (7,) float32.
    """
    tf_dtype = tf.float32 if dtype == "float32" else tf.float64
    itemsize = 4 if dtype == "float32" else 8
    descr = "<f4" if dtype == "float32" else "<f8"
    n = tf.strings.length(contents)
    magic_ok = tf.equal(tf.strings.substr(contents, 0, 8), b"\x93NUMPY\x01\x00")
    header_len = tf.cast(
        tf.io.decode_raw(tf.strings.substr(contents, 8, 2), tf.uint16, little_endian=True)[0], tf.int32
    )
    offset = 10 + header_len
    header = tf.strings.substr(contents, 10, header_len)
    ok = tf.reduce_all(
        tf.stack(
            [
                magic_ok,
                tf.equal(n, offset + LATENT_SIZE * itemsize),
                tf.strings.regex_full_match(header, rf"(?s).*'descr': *'{descr}'.*"),
                tf.strings.regex_full_match(header, r"(?s).*'shape': *\(7,\).*"),
            ]
        )
    )
    message = f"bad 3DIEBench latent (expected a {dtype} .npy of shape (7,), wrong length or header):"
    with tf.control_dependencies([tf.debugging.Assert(ok, [tf.constant(message), path], summarize=1)]):
        body = tf.strings.substr(contents, tf.minimum(offset, n), LATENT_SIZE * itemsize)
        values = tf.io.decode_raw(body, tf_dtype, little_endian=True)
    return tf.ensure_shape(tf.cast(values, tf.float32), (LATENT_SIZE,))


def epoch_positions(
    num_objects: int, seed: int, first_epoch: int, num_epochs: int | None, shuffle: bool
) -> tf.data.Dataset:
    """(epoch, position) pairs: each epoch visits positions 0..N-1, permuted per epoch when `shuffle`."""
    last = first_epoch + num_epochs if num_epochs is not None else 2**62
    n = tf.constant(num_objects, tf.int64)

    def one_epoch(epoch):
        positions = tf.data.Dataset.range(num_objects)
        if shuffle:
            key = tf.cast(fold(seed, epoch, _SHUFFLE_SALT), tf.int64)
            positions = positions.map(lambda p: tf.random.experimental.index_shuffle(p, key, n - 1))
        return positions.map(lambda p: (epoch, p))

    return tf.data.Dataset.range(first_epoch, last).flat_map(one_epoch)


def threedie_pairs(
    root: str | os.PathLike,
    split: str = "train",
    *,
    seed: int = 0,
    first_epoch: int = 0,
    num_epochs: int | None = 1,
    shuffle: bool = True,
    image_size: int | None = None,
    batch_size: int | None = None,
    augment=None,
    check_files: bool = True,
    skip_bad: bool = False,
    with_index: bool = False,
    objects: ThreeDIEObjects | None = None,
    skip: int = 0,
    first_step: int = 0,
    workers: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """View pairs of 3DIEBench objects (real or rendered by us), streamed from disk.

    Args:
        root: the 3DIEBench root (see `threedie_index` for the format).
        split: "train" or "val".
        seed: pairs and order are pure functions of (seed, epoch, object index).
        first_epoch: epoch number of the first element (to resume a run).
        num_epochs: epochs to produce; None repeats forever.
        shuffle: permute the objects each epoch (stateless).
        image_size: resize views to (S, S) when given; else keep the stored size.
        batch_size: when given, batch (drop_remainder) and prefetch, see `pair_batches`.
        augment: a policy `policy(images, seed, step, replica) -> (views, params)` applied per batch
            (needs `batch_size`), see `pair_batches`.
        check_files: read every file's header at construction (see `list_objects`).
        skip_bad: skip objects with bad files and warn with the count, instead of raising.
        with_index: add "index": () int64, the object's position in the split file.
        objects: a listing from `list_objects`, to skip listing again.
        skip: drop this many elements from the start of the stream before reading any file (a
            resumed run passes `step * batch_size`; cheap: only indices are skipped).
        first_step: the step of the first batch, for the policy's seeds (see `pair_batches`).
        workers: a multi-worker run's input context: this worker reads only its shard of the
            objects (`keras_eqssl.data.sharding`; pairs stay keyed by each object's index in the
            split file) and its policy seeds fold in the worker index; None reads every object.

    Returns:
        Unbatched: the element of the module doc; batched: each leaf gains a leading B.

    Example:
    >>> ds = threedie_pairs("/data/3DIEBench", "val", seed=0, batch_size=256)  # doctest: +SKIP
    >>> batch = next(iter(ds)); batch["rel_rotation"].shape                   # doctest: +SKIP
    TensorShape([256, 4])
    """
    if objects is None:
        objects = list_objects(root, split, check_files=check_files, skip_bad=skip_bad)
    if augment is not None and batch_size is None:
        raise ValueError("threedie_pairs: augment needs batch_size (the policy runs on batches).")
    rows = shard_items(range(len(objects)), workers)
    if rows is not None:
        objects = object_shard(objects, rows)
    dirs = tf.constant([os.path.join(objects.root, o) for o in objects.object_ids])
    labels = tf.constant(objects.labels, tf.int64)
    counts = tf.constant(objects.num_views, tf.int32)
    indices = tf.constant(objects.indices, tf.int64)
    size, dtype = objects.image_size, objects.latent_dtype

    def load(epoch, position):
        index = indices[position]
        directory = dirs[position]
        views, latents = [], []
        for k in sample_pair(seed, epoch, index, counts[position]):
            image_path = tf.strings.join([directory, "/image_", tf.strings.as_string(k), ".jpg"])
            latent_path = tf.strings.join([directory, "/latent_", tf.strings.as_string(k), ".npy"])
            views.append(decode_jpeg_checked(tf.io.read_file(image_path), image_path, size))
            latents.append(parse_latent(tf.io.read_file(latent_path), latent_path, dtype))
        element = pair_element(tuple(views), tuple(latents), labels[position], image_size)
        if with_index:
            element["index"] = index
        return element

    positions = epoch_positions(len(objects), seed, first_epoch, num_epochs, shuffle)
    if skip:
        positions = positions.skip(skip)
    ds = positions.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_size is not None:
        replica = 0 if rows is None else workers.input_pipeline_id
        ds = pair_batches(ds, batch_size, augment=augment, seed=seed, replica=replica, first_step=first_step)
    return ds if rows is None else mark_sharded(ds)


def object_shard(objects: ThreeDIEObjects, rows) -> ThreeDIEObjects:
    """The listing of the objects at `rows` of `objects` (in that order), each keeping its split-file index."""
    rows = list(rows)
    return dataclasses.replace(
        objects,
        object_ids=tuple(objects.object_ids[i] for i in rows),
        labels=objects.labels[rows],
        num_views=objects.num_views[rows],
        indices=objects.indices[rows],
    )


def pair_batches(
    pairs: tf.data.Dataset,
    batch_size: int,
    augment=None,
    seed: int = 0,
    replica: int = 0,
    first_step: int = 0,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """Batches pair elements, optionally augments each batch with a policy, and prefetches.

    With `augment`, the policy runs once per batch on the 2B images `concat([v1, v2])` with seeds
    `make_seed(seed, step, replica, view)` (step counts batches from `first_step`): a one-view
    policy (e.g. `ViewsPolicy({"v": view_chain(size)})`) augments every render with its own
    per-image draw; with a two-or-more-view policy (e.g. `simclr`), pair view k takes the policy's
    view k (computing each chain on all 2B images: twice the work of a one-view policy). The views
    become the policy's float32 images in [0, 1] and the batch gains
    `"params": {"v1": {...}, "v2": {...}}` (each leaf (B, ...)). Without it views stay uint8.

    Args:
        pairs: unbatched elements of `threedie_pairs` / `threedie_tfds.tfds_pairs`.
        batch_size: B.
        augment: a policy or None.
        seed, replica, first_step: the policy's seeds.
        drop_remainder: drop the last partial batch.

    Returns:
        A prefetched dataset of batched elements.
    """
    if batch_size < 1:
        raise ValueError(f"pair_batches: batch_size must be >= 1; received {batch_size}.")
    batches = pairs.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is None:
        return batches.prefetch(tf.data.AUTOTUNE)
    names = list(augment.view_names())

    def apply(step, batch):
        v1, v2 = batch["views"]["v1"], batch["views"]["v2"]
        b = tf.shape(v1)[0]
        views, params = augment(tf.concat([v1, v2], 0), seed=seed, step=step + first_step, replica=replica)
        out = dict(batch)
        out["views"], out["params"] = {}, {}
        for k, name in enumerate(VIEW_NAMES):
            source = names[k] if len(names) > 1 else names[0]
            rows = slice(None, b) if k == 0 else slice(b, None)
            out["views"][name] = views[source][rows]
            out["params"][name] = tf.nest.map_structure(lambda t: t[rows], params[source])
        return out

    return batches.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
