"""Any prepared tfds image-classification dataset, by name, as `{"image", "label"}`: never downloads."""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_eqssl.data.image_files import square_resize


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


def tfds_images(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    shuffle_files: bool = False,
) -> tf.data.Dataset:
    """A prepared tfds image-classification dataset as `{"image": (S, S, 3) uint8, "label": () int64}`.

    The image and label are the dataset's `supervised_keys` (else its "image" and "label"
    features); gray images are repeated to 3 channels; `image_size` centre-crops to a square and
    resizes (None keeps the stored size). Reads with `tfds.load(..., download=False)`.

    Args:
        name: a tfds name, with optional config/version ("cifar10", "imagenette/320px-v2").
        split: a tfds split ("train", "test[:10%]", ...).
        data_dir: where the dataset was prepared (None: tfds's default, ~/tensorflow_datasets).
        image_size: output side S, or None.
        shuffle_files: let tfds shuffle its files.

    Raises:
        ValueError if `name` is not a tfds dataset or has no image/label features;
        FileNotFoundError naming the dataset and data_dir if it is not prepared there.

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
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, download=False, shuffle_files=shuffle_files)
    except AssertionError as err:  # tfds's "could not find data" on a half-prepared dir
        raise _not_prepared(name, data_dir, os.fspath(builder.data_dir)) from err

    def convert(example):
        image = example[image_key]
        if image.shape.rank != 3:
            raise ValueError(f"tfds_images: {name!r} feature {image_key!r} is not an (H, W, C) image: {image.shape}.")
        image = tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image[..., :3]
        image = square_resize(tf.cast(image, tf.uint8), image_size)
        return {"image": image, "label": tf.cast(example[label_key], tf.int64)}

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
