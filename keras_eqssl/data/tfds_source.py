"""Any prepared tfds image-classification dataset, by name, as `{"image", "label"}`: never downloads."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_eqssl.data.image_files import square_resize
from keras_eqssl.data.sharding import mark_sharded, several_workers
from keras_eqssl.errors import ConfigError


def _not_prepared(name: str, data_dir, where: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"tfds dataset {name!r} is not prepared in data_dir={data_dir!r} (looked in {where}); keras_eqssl never "
        f"downloads. Prepare it where it can be fetched (`tfds build {name} --data_dir=DIR`, or its manual "
        "download) and pass data_dir=DIR."
    )


def image_label_keys(builder) -> tuple[str, str]:
    """The (image, label) feature names of a tfds builder: its `supervised_keys`, else ("image", "label")."""
    keys = builder.info.supervised_keys or ("image", "label")
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        keys = ("image", "label")
    return keys


def class_names(text: str) -> tuple[str, ...]:
    """The class names of `config.data.tfds_classes`: comma-separated, blanks dropped.

    >>> class_names("n01440764, n01443537,")
    ('n01440764', 'n01443537')
    """
    return tuple(n.strip() for n in text.split(",") if n.strip())


def class_label_map(names: Sequence[str], classes: Sequence[str], dataset: str = "") -> np.ndarray:
    """For each label id of a dataset whose label names are `names`, its label among `classes` (-1: not kept).

    The kept classes are numbered in the order of the dataset's own ids (as a folder of class
    subfolders sorts ImageNet's wnids), whatever the order of `classes`.

    Raises:
        ConfigError naming the `classes` not in `names` (`config.data.tfds_classes`).

    Example:
    >>> class_label_map(["cat", "dog", "owl", "eel"], ["owl", "cat"]).tolist()
    [0, -1, 1, -1]
    """
    unknown = [c for c in classes if c not in names]
    if unknown:
        have = f"e.g. {list(names[:3])}" if len(names) else "no class names"
        raise ConfigError(
            f"config.data.tfds_classes: tfds dataset {dataset!r} has no class named {unknown[:5]}"
            f"{f' (and {len(unknown) - 5} more)' if len(unknown) > 5 else ''}; its label names are {have}"
        )
    label_map = np.full(len(names), -1, np.int64)
    kept = sorted({list(names).index(c) for c in classes})
    label_map[kept] = np.arange(len(kept))
    return label_map


def tfds_images(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    shuffle_files: bool = False,
    classes: Sequence[str] = (),
    workers: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """A prepared tfds image-classification dataset as `{"image": (S, S, 3) uint8, "label": () int64}`.

    The image and label are the dataset's `supervised_keys` (else its "image" and "label"
    features); gray images are repeated to 3 channels; `image_size` centre-crops to a square and
    resizes (None keeps the stored size). Reads with `tfds.load(..., download=False)`, which
    streams the record files interleaved (tfds's `ReadConfig`: 16 files at a time, read in
    parallel, in a fixed order). Nothing is held in memory by keras_eqssl; tfds itself caches a
    data set of under 250 MiB in memory on its first pass (`ReadConfig.try_autocache`), never a
    larger one.

    Args:
        name: a tfds name, with optional config/version ("cifar10", "imagenette/320px-v2").
        split: a tfds split ("train", "test[:10%]", ...).
        data_dir: where the dataset was prepared (None: tfds's default, ~/tensorflow_datasets).
        image_size: output side S, or None.
        shuffle_files: let tfds shuffle its files.
        workers: a multi-worker run's input context: this worker reads only its part of `split`
            (`tfds.even_splits`, reading only those records' files; `keras_eqssl.data.sharding`);
            None reads the whole split.
        classes: keep only the examples of these label names (e.g. ImageNet-100's wnids), labelled
            0..len(classes)-1 in the dataset's own order (`class_label_map`); () keeps all. The
            other examples are dropped before their images are decoded.

    Raises:
        ValueError if `name` is not a tfds dataset or has no image/label features;
        FileNotFoundError naming the dataset and data_dir if it is not prepared there;
        ConfigError naming the `classes` the dataset does not have.

    Example:
    >>> ds = tfds_images("cifar10", "train", data_dir="/data/tfds", image_size=32)  # doctest: +SKIP
    """
    data_dir = os.fspath(data_dir) if data_dir is not None else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as err:
        raise ValueError(f"tfds_images: {name!r} is not a tfds dataset ({err}).") from err
    if not builder.is_prepared():
        raise _not_prepared(name, data_dir, os.fspath(builder.data_dir))
    features = builder.info.features
    image_key, label_key = image_label_keys(builder)
    if image_key not in features or label_key not in features:
        raise ValueError(
            f"tfds_images: dataset {name!r} has no {image_key!r}/{label_key!r} features; it has {list(features)}."
        )
    names = getattr(features[label_key], "names", None) or []
    label_map = class_label_map(names, classes, dataset=name) if classes else None
    decoders = None if label_map is None else {image_key: tfds.decode.SkipDecoding()}
    shards = sharded_split(split, workers)
    try:
        ds = tfds.load(
            name,
            split=split if shards is None else shards,
            data_dir=data_dir,
            download=False,
            shuffle_files=shuffle_files,
            decoders=decoders,
        )
    except AssertionError as err:  # tfds's "could not find data" on a half-prepared dir
        raise _not_prepared(name, data_dir, os.fspath(builder.data_dir)) from err
    if label_map is not None:
        ds = _keep_classes(ds, features[image_key], image_key, label_key, tf.constant(label_map))

    def convert(example):
        image = example[image_key]
        if image.shape.rank != 3:
            raise ValueError(f"tfds_images: {name!r} feature {image_key!r} is not an (H, W, C) image: {image.shape}.")
        image = tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image[..., :3]
        image = square_resize(tf.cast(image, tf.uint8), image_size)
        return {"image": image, "label": tf.cast(example[label_key], tf.int64)}

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return ds if shards is None else mark_sharded(ds)


def sharded_split(split: str, workers: tf.distribute.InputContext | None):
    """This worker's part of a tfds split (one of `tfds.even_splits(split, workers)`, for `tfds.load`),
    or None when not sharded.

    >>> sharded_split("train", None) is None
    True
    """
    if not several_workers(workers):
        return None
    return tfds.even_splits(split, n=workers.num_input_pipelines)[workers.input_pipeline_id]


def _keep_classes(ds, image_feature, image_key: str, label_key: str, label_map: tf.Tensor) -> tf.data.Dataset:
    """The examples whose label `label_map` keeps, relabelled, their encoded images decoded after the filter."""

    def mapped(label):  # -1 for the labels the map drops, and for a dataset's "no label" (-1)
        return tf.where(label >= 0, tf.gather(label_map, tf.maximum(label, 0)), tf.constant(-1, label_map.dtype))

    def decode(example):
        example = dict(example)
        example[image_key] = image_feature.decode_example(example[image_key])
        example[label_key] = mapped(example[label_key])
        return example

    ds = ds.filter(lambda example: mapped(example[label_key]) >= 0)
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
