"""Real photographs that ship inside scikit-image: no download, so tests and demos run offline."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from keras_eqssl.data.source_names import PHOTO_SPLITS

# Photographs (not synthetic patterns) that scikit-image bundles in its wheel; some are gray.
PHOTOS = (
    "astronaut",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "moon",
    "brick",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "stereo_motorcycle",
)
_STORE_SIDE = 256
# Photos no pretraining run on the "train" split sees (the flagship comparison scores its probes
# on crops of these). `cat` and `chelsea` are the same photo, so both stay on one side.
HELD_OUT_PHOTOS = ("astronaut", "coffee", "rocket", "stereo_motorcycle")


def photo_names(split: str = "all") -> tuple[str, ...]:
    """The photos of a split: "all" (`PHOTOS`), "test" (`HELD_OUT_PHOTOS`) or "train" (the rest).

    >>> len(photo_names("train")) + len(photo_names("test")) == len(photo_names("all"))
    True
    """
    if split not in PHOTO_SPLITS:
        raise ValueError(f"skimage_photos: unknown photo split {split!r}; known: {PHOTO_SPLITS}.")
    if split == "all":
        return PHOTOS
    held = split == "test"
    return tuple(name for name in PHOTOS if (name in HELD_OUT_PHOTOS) == held)


def _square_rgb(image: np.ndarray) -> np.ndarray:
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = image[..., :3]
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return image[y : y + side, x : x + side]


@functools.cache
def load_photos(names: tuple[str, ...] = PHOTOS) -> np.ndarray:
    """The bundled photos, centre-cropped square and resized: (P, 256, 256, 3) uint8."""
    import skimage.data

    out = []
    for name in names:
        try:
            image = getattr(skimage.data, name)()
        except Exception as err:  # a scikit-image without this photo, or one that wants a download
            raise RuntimeError(
                f"scikit-image photo {name!r} could not be loaded ({type(err).__name__}: {err}); "
                "it should ship inside the scikit-image wheel."
            ) from err
        square = tf.image.resize(_square_rgb(image), (_STORE_SIDE, _STORE_SIDE), antialias=True)
        out.append(tf.cast(tf.clip_by_value(tf.round(square), 0, 255), tf.uint8).numpy())
    return np.stack(out)


def skimage_photos(
    image_size: int = 128, num_images: int = 2048, seed: int = 0, photos: str = "all", tiles: int = 1
) -> tf.data.Dataset:
    """Random square crops of the scikit-image photos, as `{"image": (S, S, 3) uint8, "label": int32}`.

    Image i is a crop of photo `i % P` covering 40-100% of its side at a random position, drawn
    statelessly from (seed, i), so the dataset is the same on every run. The label is the
    photo's index among the P photos of `photos` ("all": 16, "train": 12, "test": the 4
    `HELD_OUT_PHOTOS`; see `photo_names`).

    With `tiles=t > 1`, each photo is cut into t x t tiles that never overlap, image i is a crop
    of tile `i % (P t²)` (40-100% of the tile's side), and the label is that tile's index
    (`photo * t² + row * t + column`): a probe that holds out whole tiles scores on pixels its
    heads never saw, from the same photos.

    The photos are held in memory (`load_photos`, cached: at most 16 photos of 256 px, 3 MB), the
    one source that is: the file-based sources stream from disk. Every worker of a multi-worker
    run makes the same images (they are not sharded).

    Example:
    >>> ds = skimage_photos(image_size=64, num_images=8)
    >>> next(iter(ds))["image"].shape
    TensorShape([64, 64, 3])
    >>> [int(e["label"]) for e in skimage_photos(16, 6, photos="test", tiles=2)]
    [0, 1, 2, 3, 4, 5]
    """
    if image_size < 1 or num_images < 1 or tiles < 1:
        raise ValueError(
            "skimage_photos: image_size, num_images and tiles must be >= 1; received "
            f"{image_size}, {num_images}, {tiles}."
        )
    photos = tf.constant(load_photos(photo_names(photos)))
    count = photos.shape[0] * tiles * tiles

    def crop(i):
        s = tf.random.experimental.stateless_fold_in(tf.constant([seed, 7], tf.int64), i)
        u = tf.random.stateless_uniform([3], s)
        side = 0.4 + 0.6 * u[0]
        label = tf.cast(i % count, tf.int32)
        photo, tile = label // (tiles * tiles), label % (tiles * tiles)
        row, column = tf.cast(tile // tiles, tf.float32), tf.cast(tile % tiles, tf.float32)
        y0, x0 = (row + u[1] * (1 - side)) / tiles, (column + u[2] * (1 - side)) / tiles
        box = tf.stack([y0, x0, y0 + side / tiles, x0 + side / tiles])[None]
        image = tf.image.crop_and_resize(tf.cast(photos[photo][None], tf.float32), box, [0], [image_size, image_size])
        return {"image": tf.cast(tf.clip_by_value(tf.round(image[0]), 0, 255), tf.uint8), "label": label}

    return tf.data.Dataset.range(num_images).map(crop, num_parallel_calls=tf.data.AUTOTUNE)
