"""A folder of class subfolders as `{"image", "label"}`, streamed: `ROOT/CLASS/**/*.jpg|png|gif|bmp`."""

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


@dataclasses.dataclass(frozen=True)
class ImageFolderListing:
    """The files of an image folder: `paths[i]` has label `labels[i]`, the index of its class in `class_names`."""

    root: str
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    skipped: tuple[tuple[str, str], ...] = ()


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
    """Lists `ROOT/CLASS/**/image` files; labels are class indices in sorted folder-name order.

    Args:
        root: the folder of class subfolders.
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
        BadFileError (a ValueError) naming the root, an empty class folder or a bad file.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise BadFileError(root, "image folder root is not a directory")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        loose = [e.name for e in os.scandir(root) if e.name.lower().endswith(IMAGE_EXTENSIONS)]
        hint = f"; it holds {len(loose)} image(s) directly, put them in class subfolders" if loose else ""
        raise BadFileError(root, f"has no class subfolders (expected ROOT/CLASS/image.jpg){hint}")
    paths, labels, problems = [], [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        found = sorted(
            os.path.join(d, f)
            for d, _, files in os.walk(folder)
            for f in files
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
        if not found:
            problems.append((folder, f"class folder is empty (no {'/'.join(IMAGE_EXTENSIONS)} files)"))
        paths += found
        labels += [label] * len(found)
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
        raise BadFileError(root, "no usable images")
    if problems:
        warnings.warn(
            f"image folder {root}: skipped {len(problems)} bad file(s)/empty folder(s); "
            f"first: {problems[0][0]}: {problems[0][1]}",
            stacklevel=2,
        )
    return ImageFolderListing(root, tuple(classes), tuple(paths), tuple(labels), tuple(problems))


def image_folder(
    root: str | os.PathLike,
    image_size: int,
    shuffle: bool = True,
    seed: int = 0,
    check_files: bool = True,
    skip_bad: bool = False,
    check_decode: bool = False,
    decode_check_limit: int = DECODE_CHECK_LIMIT,
) -> tf.data.Dataset:
    """Images of class subfolders as `{"image": (S, S, 3) uint8, "label": () int64}`, decoded in tf.data.

    Each image is centre-cropped to a square and resized to `image_size` (antialiased); gray and
    RGBA images become RGB. Only the file list is held in memory.

    Args:
        root: `ROOT/CLASS/...` folder (see `list_image_folder`).
        image_size: output side S.
        shuffle: shuffle the file list (seeded, reshuffled on each iteration), before decoding.
        seed: the shuffle seed.
        check_files, skip_bad, check_decode, decode_check_limit: see `list_image_folder`.

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
    ds = tf.data.Dataset.from_tensor_slices((list(listing.paths), tf.constant(listing.labels, tf.int64)))
    if shuffle:
        ds = ds.shuffle(len(listing.paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, label):
        image = decode_image_checked(tf.io.read_file(path), path)
        return {"image": tf.ensure_shape(square_resize(image, image_size), (image_size, image_size, 3)), "label": label}

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
