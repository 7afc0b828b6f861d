"""Fashion-MNIST (Xiao et al. 2017) from Debian's `dataset-fashion-mnist` package: no download.

Install it with `apt-get install -y dataset-fashion-mnist`; it puts the original gzipped idx files
in /usr/share/datasets/fashion-mnist ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz). The files
are streamed with `tf.data.FixedLengthRecordDataset` (GZIP), headers checked first: nothing is
held in memory, and every worker of a multi-worker run reads the two files whole (not sharded).
"""

from __future__ import annotations

import gzip
import os
import struct

import tensorflow as tf

from keras_eqssl.data.image_files import BadFileError

APT_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
_PREFIX = {"train": "train", "test": "t10k"}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


def fashion_mnist_files(split: str = "train", directory: str | os.PathLike = FASHION_MNIST_DIR) -> tuple[str, str]:
    """(images, labels) idx file paths of a split ("train" or "test"); `.gz` or uncompressed."""
    if split not in _PREFIX:
        raise ValueError(f"Fashion-MNIST split must be one of {tuple(_PREFIX)}; received split={split!r}.")
    out = []
    for kind in ("images-idx3", "labels-idx1"):
        base = os.path.join(os.fspath(directory), f"{_PREFIX[split]}-{kind}-ubyte")
        path = base + ".gz" if os.path.isfile(base + ".gz") or not os.path.isfile(base) else base
        out.append(path)
    return out[0], out[1]


def fashion_mnist_available(directory: str | os.PathLike = FASHION_MNIST_DIR) -> bool:
    """Whether all four idx files are there (the Debian package is installed)."""
    return all(os.path.isfile(p) for s in _PREFIX for p in fashion_mnist_files(s, directory))


def read_idx_header(path: str, magic: int) -> tuple[int, ...]:
    """The dimensions in an idx file's header (count first), checking its magic number and length."""
    if not os.path.isfile(path):
        raise BadFileError(
            path, f"missing Fashion-MNIST file; install Debian's package: apt-get install -y {APT_PACKAGE}"
        )
    opener = gzip.open if path.endswith(".gz") else open
    ndim = magic & 0xFF
    try:
        with opener(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
    except (OSError, EOFError) as err:
        raise BadFileError(path, f"cannot read ({err})") from err
    if len(header) < 4 + 4 * ndim or struct.unpack(">I", header[:4])[0] != magic:
        raise BadFileError(path, f"not an idx file with magic number {magic} (first bytes {header[:4]!r})")
    return struct.unpack(f">{ndim}I", header[4:])


def fashion_mnist(
    split: str = "train",
    directory: str | os.PathLike = FASHION_MNIST_DIR,
    image_size: int | None = None,
    channels: int = 3,
) -> tf.data.Dataset:
    """Fashion-MNIST as `{"image": (S, S, channels) uint8, "label": () int64}` (S = 28 unless `image_size`).

    Args:
        split: "train" (60,000) or "test" (10,000).
        directory: folder of the four idx files (the Debian package's by default).
        image_size: resize to (S, S) (antialiased) when given.
        channels: 3 (gray repeated, the pipeline's RGB) or 1.

    Raises:
        BadFileError naming a missing or malformed file (the message gives the apt-get line).

    Example:
    >>> ds = fashion_mnist("test", image_size=32)  # doctest: +SKIP
    >>> next(iter(ds))["image"].shape              # doctest: +SKIP
    TensorShape([32, 32, 3])
    """
    if channels not in (1, 3):
        raise ValueError(f"fashion_mnist: channels must be 1 or 3; received {channels}.")
    images_path, labels_path = fashion_mnist_files(split, directory)
    count, rows, cols = read_idx_header(images_path, _IMAGES_MAGIC)
    (label_count,) = read_idx_header(labels_path, _LABELS_MAGIC)
    if count != label_count:
        raise BadFileError(labels_path, f"has {label_count} labels but {images_path} has {count} images")
    compression = "GZIP" if images_path.endswith(".gz") else ""
    images = tf.data.FixedLengthRecordDataset(images_path, rows * cols, header_bytes=16, compression_type=compression)
    compression = "GZIP" if labels_path.endswith(".gz") else ""
    labels = tf.data.FixedLengthRecordDataset(labels_path, 1, header_bytes=8, compression_type=compression)

    def convert(image, label):
        image = tf.reshape(tf.io.decode_raw(image, tf.uint8), (rows, cols, 1))
        if image_size is not None:
            image = tf.image.resize(image, (image_size, image_size), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        if channels == 3:
            image = tf.image.grayscale_to_rgb(image)
        return {"image": image, "label": tf.cast(tf.io.decode_raw(label, tf.uint8)[0], tf.int64)}

    ds = tf.data.Dataset.zip(images, labels).map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(count))
