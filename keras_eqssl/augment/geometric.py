"""Geometric ops: continuous rotation, 90-degree rotation, translation."""

from __future__ import annotations

import math

import tensorflow as tf

from keras_eqssl.augment.affine import affine, rotation_matrix, translation_matrix
from keras_eqssl.augment.base import CATEGORICAL, CONTINUOUS, Op, ParamSpec, check_range, draw, register, uniform

FILL_MODES = ("constant", "reflect", "wrap", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def _check_fill(owner, fill_mode):
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{owner}: fill_mode must be one of {FILL_MODES}; received fill_mode={fill_mode!r}.")
    return fill_mode


def rot90(images, k) -> tf.Tensor:
    """Rotates each image counter-clockwise by k[i] * 90 degrees (square images), k (B,) or (B, 1).

    Equal to `tf.image.rot90(images[i], k[i])` per image, as one gather of the pixels: rotating
    the whole batch three times and selecting cost about 6x more on a CPU at GTSA's crop sizes.
    """
    images = tf.convert_to_tensor(images)
    k = tf.reshape(tf.cast(k, tf.int32), [-1]) % 4
    shape = tf.shape(images)
    side, r = shape[1], shape[1] - 1
    i, j = tf.meshgrid(tf.range(side), tf.range(side), indexing="ij")  # output row, column
    # The source pixel of output (i, j) for k = 0, 1, 2, 3 (tf.image.rot90's counter-clockwise turns).
    rows = tf.stack([i, j, r - i, r - j])
    cols = tf.stack([j, r - i, r - j, i])
    source = tf.reshape(rows * side + cols, [4, -1])  # (4, side * side)
    flat = tf.reshape(images, tf.stack([shape[0], side * shape[2], shape[3]]))
    out = tf.reshape(tf.gather(flat, tf.gather(source, k), batch_dims=1), shape)
    out.set_shape(images.shape)
    return out


def rot90_boxes(boxes, k) -> tf.Tensor:
    """Boxes (..., 4) as normalised (y0, x0, y1, x1) under a counter-clockwise rotation by k * 90 degrees."""
    k = tf.cast(k, tf.int32) % 4
    y0, x0, y1, x1 = tf.unstack(boxes, axis=-1)
    options = [
        tf.stack([y0, x0, y1, x1], -1),
        tf.stack([1 - x1, y0, 1 - x0, y1], -1),
        tf.stack([1 - y1, 1 - x1, 1 - y0, 1 - x0], -1),
        tf.stack([x0, 1 - y1, x1, 1 - y0], -1),
    ]
    k = tf.broadcast_to(k, tf.shape(y0))
    out = options[0]
    for j in range(1, 4):
        out = tf.where((k == j)[..., None], options[j], out)
    return out


@register
class Rotation(Op):
    """Rotates each image counter-clockwise by an angle ~ U(degrees) about its centre.

    The centre is the image's centre ((W - 1) / 2, (H - 1) / 2 in pixel indices) and a positive
    angle turns the content counter-clockwise on screen, as torchvision's `rotate`; with the same
    interpolation the two agree to about 1e-5 (docs/parity).

    Args:
        degrees: (min, max) angle in degrees, or x for (-x, x).
        fill_mode: how to fill the corners: constant (black), reflect, wrap, nearest.
        interpolation: `"bilinear"` (default) or `"nearest"`, the default of torchvision's
            `RandomRotation` and `rotate` (nearest moves whole pixels: no blur, but jagged edges).

    Records `rotation` (B, 1): the angle in degrees, positive = counter-clockwise.

    Example:
    >>> from keras_eqssl.augment import Rotation
    >>> op = Rotation(degrees=45.0)
    >>> images = tf.random.stateless_uniform((4, 16, 16, 3), seed=(0, 1))
    >>> rotated, params = op(images, seed=0)
    >>> tuple(params["rotation"].shape), bool(tf.reduce_all(tf.abs(params["rotation"]) <= 45.0))
    ((4, 1), True)
    >>> quarter = op.apply(images, {"rotation": tf.fill((4, 1), 90.0)})
    >>> bool(tf.reduce_max(tf.abs(quarter - tf.image.rot90(images))) < 1e-4)  # counter-clockwise, as rot90
    True
    """

    def __init__(
        self, degrees=45.0, fill_mode: str = "constant", interpolation: str = "bilinear", name: str = "rotation"
    ):
        super().__init__(name)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Rotation: interpolation must be one of {INTERPOLATIONS}; received interpolation={interpolation!r}."
            )
        self.interpolation = interpolation
        if isinstance(degrees, (int, float)):
            degrees = (-abs(degrees), abs(degrees))
        self.degrees = check_range("Rotation", "degrees", degrees, low=-180.0, high=180.0)
        self.fill_mode = _check_fill("Rotation", fill_mode)

    def param_specs(self):
        return [ParamSpec(self.name, (1,), CONTINUOUS, *self.degrees, doc="degrees, counter-clockwise")]

    def sample(self, batch_size, seed, image_size=None):
        return {self.name: uniform([batch_size, 1], seed, 0, *self.degrees)}

    def apply(self, images, params):
        hw = tf.cast(tf.shape(images)[1:3], tf.float32)
        angles = params[self.name][:, 0] * (math.pi / 180.0)  # counter-clockwise (on screen) for positive angles
        return affine(images, rotation_matrix(angles, hw[0], hw[1]), self.fill_mode, interpolation=self.interpolation)

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1])}

    def get_config(self):
        return {
            "degrees": list(self.degrees),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "name": self.name,
        }


@register
class Rotate90(Op):
    """Rotates each square image counter-clockwise by k * 90 degrees, k uniform in `ks`.

    Records `rot90` (B, 1) int32: k in {0, 1, 2, 3}.

    Example:
    >>> from keras_eqssl.augment import Rotate90
    >>> images = tf.random.stateless_uniform((2, 8, 8, 3), seed=(0, 1))
    >>> out = Rotate90().apply(images, {"rot90": tf.constant([[1], [3]])})
    >>> [bool(tf.reduce_all(out[i] == tf.image.rot90(images[i], k))) for i, k in enumerate((1, 3))]
    [True, True]
    """

    def __init__(self, ks=(0, 1, 2, 3), name: str = "rot90"):
        super().__init__(name)
        self.ks = tuple(int(k) for k in ks)
        if not self.ks or any(k not in (0, 1, 2, 3) for k in self.ks):
            raise ValueError(f"Rotate90: ks must be a non-empty subset of (0, 1, 2, 3); received ks={ks!r}.")

    def param_specs(self):
        return [ParamSpec(self.name, (1,), CATEGORICAL, 0, 3, "int32", doc="quarter turns, counter-clockwise")]

    def sample(self, batch_size, seed, image_size=None):
        u = tf.random.stateless_uniform([batch_size, 1], draw(seed, 0), 0, len(self.ks), tf.int32)
        return {self.name: tf.gather(tf.constant(self.ks, tf.int32), u)}

    def apply(self, images, params):
        if images.shape[1] is not None and images.shape[1] != images.shape[2]:
            raise ValueError(f"Rotate90 needs square images; received shape {images.shape}.")
        return rot90(images, params[self.name])

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1], tf.int32)}

    def get_config(self):
        return {"ks": list(self.ks), "name": self.name}


@register
class Translation(Op):
    """Shifts image content by (tx, ty) pixels, each ~ U(-max_shift, max_shift).

    Records `translation` (B, 2): (tx, ty) in pixels of the input; positive = right / down.

    Example:
    >>> from keras_eqssl.augment import Translation
    >>> images = tf.random.stateless_uniform((1, 8, 8, 3), seed=(0, 1))
    >>> shifted = Translation(max_shift=4.0).apply(images, {"translation": tf.constant([[2.0, 0.0]])})
    >>> bool(tf.reduce_all(shifted[:, :, 2:] == images[:, :, :-2])), bool(tf.reduce_all(shifted[:, :, :2] == 0))
    (True, True)
    """

    def __init__(self, max_shift: float = 10.0, fill_mode: str = "constant", name: str = "translation"):
        super().__init__(name)
        self.max_shift = float(max_shift)
        if self.max_shift < 0:
            raise ValueError(f"Translation: max_shift must be >= 0; received max_shift={max_shift}.")
        self.fill_mode = _check_fill("Translation", fill_mode)

    def param_specs(self):
        m = self.max_shift
        return [ParamSpec(self.name, (2,), CONTINUOUS, -m, m, names=("tx", "ty"), doc="pixels, right/down")]

    def sample(self, batch_size, seed, image_size=None):
        return {self.name: uniform([batch_size, 2], seed, 0, -self.max_shift, self.max_shift)}

    def apply(self, images, params):
        t = params[self.name]
        return affine(images, translation_matrix(t[:, 0], t[:, 1]), self.fill_mode)

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 2])}

    def get_config(self):
        return {"max_shift": self.max_shift, "fill_mode": self.fill_mode, "name": self.name}
