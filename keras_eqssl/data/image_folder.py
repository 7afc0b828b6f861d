"""An image folder as a stream of `{"image", "label"}` (labelled) or `{"image"}` (unlabelled).

Two layouts (`image_folder_layout`):
- labelled: `ROOT/CLASS/**/*.jpg|png|gif|bmp`, one subfolder per class and no image directly in ROOT;
- unlabelled (flat): `ROOT/*.jpg|png|gif|bmp`, images directly in ROOT and no subfolder.
A folder with both is refused (which images would carry which label is ambiguous), and so is one
with neither. Hidden files and folders (names starting with ".") are ignored.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import tensorflow as tf

from keras_eqssl.data.image_files import (
    IMAGE_EXTENSIONS,
    BadFileError,
    check_image_file,
    check_many,
    decode_check_many,
    decode_image_checked,
    square_resize,
)
from keras_eqssl.data.sharding import mark_sharded, shard_items


@dataclasses.dataclass(frozen=True)
class ImageFolderListing:
    """The files of an image folder: `paths[i]` has label `labels[i]`, the index of its class in `class_names`.

    An unlabelled (flat) folder has no `class_names` and every label is -1.
    """

    root: str
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def labelled(self) -> bool:
        return bool(self.class_names)


LABELLED, FLAT = "labelled", "flat"
NO_LABELS = "no labels: {root} has no class subfolders"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def image_folder_layout(root: str | os.PathLike) -> str:
    """The layout of `root`: "labelled" (class subfolders only) or "flat" (images directly in it, no subfolder).

    Raises:
        BadFileError (a ValueError) naming `root` when it is not a directory, holds both images and
        subfolders, or holds neither.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise BadFileError(root, "image folder root is not a directory")
    entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
    folders = sorted(e.name for e in entries if e.is_dir())
    loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
    if folders and loose:
        raise BadFileError(
            root,
            f"holds both {len(loose)} image(s) directly and {len(folders)} subfolder(s) ({', '.join(folders[:3])}"
            f"{', ...' if len(folders) > 3 else ''}): put every image in class subfolders (ROOT/CLASS/image.jpg, "
            "labelled) or every image directly in the folder with no subfolder (ROOT/image.jpg, unlabelled)",
        )
    if folders:
        return LABELLED
    if loose:
        return FLAT
    raise BadFileError(
        root,
        f"holds no images (no {'/'.join(IMAGE_EXTENSIONS)} files directly in it, and no class subfolders); expected "
        "ROOT/CLASS/image.jpg (labelled) or ROOT/image.jpg (unlabelled)",
    )


def _found_files(root: str, layout: str) -> tuple[list, list, list, tuple]:
    """(paths, labels, problems, class names) of a folder of `layout`, before any file check."""
    if layout == FLAT:
        paths = sorted(os.path.join(root, e.name) for e in os.scandir(root) if e.is_file() and _is_image(e.name))
        return paths, [-1] * len(paths), [], ()
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    paths, labels, problems = [], [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        found = sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if _is_image(f))
        if not found:
            problems.append((folder, f"class folder is empty (no {'/'.join(IMAGE_EXTENSIONS)} files)"))
        paths += found
        labels += [label] * len(found)
    return paths, labels, problems, tuple(classes)


def _drop_bad(results: list, paths: list, labels: list, problems: list) -> tuple[list, list]:
    """`paths` and `labels` without the files whose check result is a `BadFileError` (appended to `problems`)."""
    bad = {i for i, r in enumerate(results) if isinstance(r, BadFileError)}
    problems += [(results[i].path, results[i].reason) for i in sorted(bad)]
    return [p for i, p in enumerate(paths) if i not in bad], [y for i, y in enumerate(labels) if i not in bad]


DECODE_CHECK_LIMIT = 2000  # folders this small are decoded once before use anyway (about 1-2 ms an image)


def list_image_folder(
    root: str | os.PathLike,
    check_files: bool = True,
    skip_bad: bool = False,
    check_decode: bool = False,
    decode_check_limit: int = DECODE_CHECK_LIMIT,
) -> ImageFolderListing:
    """Lists `ROOT/CLASS/**/image` files (labels: class indices in sorted folder-name order), or
    the `ROOT/image` files of a flat folder (unlabelled: labels -1); see `image_folder_layout`.

    Args:
        root: the folder of class subfolders, or of images (no subfolder).
        check_files: read each file's header/end (no decode) to find corrupt or truncated images.
        skip_bad: skip bad files and empty class folders with a warning that counts them,
            instead of raising (labels keep the sorted-name numbering).
        check_decode: also decode every image once (`decode_check_many`: slow, sequential) to
            find damaged files that pass the header check, including JPEGs that decode into
            garbage with only a libjpeg warning ("Corrupt JPEG data", which does not name the file).
        decode_check_limit: without `check_decode`, a folder of at most this many images is
            decode-checked all the same (0: never), so a small folder never trains on such a
            file unnamed.

    Raises:
        BadFileError (a ValueError) naming the root (not a folder, no images, images and subfolders
        mixed, no usable image), an empty class folder or a bad file.
    """
    root = os.path.abspath(os.fspath(root))
    paths, labels, problems, classes = _found_files(root, image_folder_layout(root))
    if check_files:
        paths, labels = _drop_bad(check_many(paths, check_image_file), paths, labels, problems)
    if check_decode or len(paths) <= decode_check_limit:
        paths, labels = _drop_bad(decode_check_many(paths, progress=len(paths) > 1000), paths, labels, problems)
    if problems and not skip_bad:
        path, reason = problems[0]
        raise BadFileError(
            path,
            f"{reason} ({len(problems)} problem(s) in {root}; pass skip_bad=True, or --config.data.skip_bad=True, to skip them)",
        )
    if not paths:
        raise BadFileError(root, f"no usable images ({len(problems)} unreadable file(s)/empty folder(s) skipped)")
    if problems:
        warnings.warn(
            f"image folder {root}: skipped {len(problems)} bad file(s)/empty folder(s); "
            f"first: {problems[0][0]}: {problems[0][1]}",
            stacklevel=2,
        )
    return ImageFolderListing(root, classes, tuple(paths), tuple(labels), tuple(problems))


def image_folder(
    root: str | os.PathLike,
    image_size: int,
    shuffle: bool = True,
    seed: int = 0,
    check_files: bool = True,
    skip_bad: bool = False,
    check_decode: bool = False,
    decode_check_limit: int = DECODE_CHECK_LIMIT,
    workers: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Images of class subfolders as `{"image": (S, S, 3) uint8, "label": () int64}`, or of a flat
    folder as `{"image"}` alone (unlabelled), decoded in tf.data.

    Each image is centre-cropped to a square and resized to `image_size` (antialiased); gray and
    RGBA images become RGB. Only the file list is held in memory: every epoch reads and decodes
    the files again (nothing is cached), so a folder of any size streams.

    Args:
        root: `ROOT/CLASS/...` or flat `ROOT/image` folder (see `image_folder_layout`).
        image_size: output side S.
        shuffle: shuffle the file list (seeded, reshuffled on each iteration), before decoding.
        seed: the shuffle seed.
        check_files, skip_bad, check_decode, decode_check_limit: see `list_image_folder`.
        workers: a multi-worker run's input context: this worker lists every file but reads only
            its shard of the sorted list (`keras_eqssl.data.sharding`); None reads them all.

    Example:
    >>> ds = image_folder("/data/flowers", image_size=64)  # doctest: +SKIP
    >>> next(iter(ds))["image"].shape                       # doctest: +SKIP
    TensorShape([64, 64, 3])
    """
    if image_size < 1:
        raise ValueError(f"image_folder: image_size must be >= 1; received {image_size}.")
    listing = list_image_folder(
        root,
        check_files=check_files,
        skip_bad=skip_bad,
        check_decode=check_decode,
        decode_check_limit=decode_check_limit,
    )
    paths, labels = list(listing.paths), list(listing.labels)
    shard = shard_items(list(zip(paths, labels)), workers)
    if shard is not None:
        paths, labels = [p for p, _ in shard], [y for _, y in shard]
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, label):
        image = decode_image_checked(tf.io.read_file(path), path)
        image = tf.ensure_shape(square_resize(image, image_size), (image_size, image_size, 3))
        return {"image": image, "label": label} if listing.labelled else {"image": image}

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds if shard is None else mark_sharded(ds)
