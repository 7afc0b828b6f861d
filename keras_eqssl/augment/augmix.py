"""AugMix (Hendrycks et al., ICLR 2020) with every chain, op, magnitude and weight recorded.

    x_aug = (1 - m) * x + m * sum_c w_c * chain_c(x),   w ~ Dirichlet(alpha), m ~ Beta(alpha, alpha)

Each chain is 1-3 ops (or `depth`) drawn from the AugMix set below (the paper's "augmix-safe" list;
`all_ops=True` adds brightness, color, contrast and sharpness, as torchvision's `AugMix(all_ops=True)`,
its default) with a signed magnitude in [-severity/10, severity/10]. Keras's AugMix draws the ops
with Python `random` at trace time (one choice per batch) and keras-cv's runs per image in a map;
ours draws per image and replays the recorded choices exactly (`apply(images, params)` is
bit-identical). Each op equals torchvision's on the same magnitude (docs/parity/augment.json).
"""

from __future__ import annotations

import functools
import math

import tensorflow as tf

from keras_eqssl.augment.affine import affine, rotation_matrix, translation_matrix
from keras_eqssl.augment.base import (
    CATEGORICAL,
    CONTINUOUS,
    Op,
    ParamSpec,
    draw,
    register,
    switch_per_image,
    uniform,
)
from keras_eqssl.augment.color import adjust_contrast, adjust_saturation

AUGMIX_OPS = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
# The ops torchvision's AugMix adds with all_ops=True (its default); the paper leaves them out because
# they overlap with ImageNet-C's corruptions.
AUGMIX_EXTRA_OPS = ("brightness", "color", "contrast", "sharpness")
AUGMIX_ALL_OPS = AUGMIX_OPS + AUGMIX_EXTRA_OPS
NO_OP = len(AUGMIX_OPS)  # op index recorded for unused chain steps (len(AUGMIX_ALL_OPS) with all_ops=True)


def autocontrast(images, _m):
    lo = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    scaled = (images - lo) / tf.maximum(hi - lo, 1e-8)
    return tf.where(hi > lo, scaled, images)


def equalize(images, _m):
    """Per-channel histogram equalisation with PIL's lookup table."""
    n, h, w, c = (tf.shape(images)[i] for i in range(4))
    q = tf.cast(tf.round(images * 255.0), tf.int32)
    flat = tf.reshape(tf.transpose(q, [0, 3, 1, 2]), [n * c, h * w])
    hist = tf.math.bincount(flat, minlength=256, maxlength=256, axis=-1)
    last = tf.gather(
        hist, 255 - tf.argmax(tf.reverse(tf.cast(hist > 0, tf.int32), [1]), axis=1, output_type=tf.int32), batch_dims=1
    )
    step = (tf.reduce_sum(hist, axis=1) - last) // 255
    before = tf.cumsum(hist, axis=1, exclusive=True)
    safe = tf.maximum(step, 1)[:, None]
    lut = tf.minimum((before + safe // 2) // safe, 255)
    out = tf.where(step[:, None] > 0, tf.gather(lut, flat, batch_dims=1), flat)
    out = tf.transpose(tf.reshape(out, [n, c, h, w]), [0, 2, 3, 1])
    return tf.cast(out, tf.float32) / 255.0


def posterize(images, m):
    bits = 4 - tf.cast(tf.floor(tf.abs(m) * 4.0), tf.int32)  # 4 .. 0 kept bits
    div = tf.reshape(tf.cast(tf.bitwise.left_shift(1, 8 - bits), tf.float32), [-1, 1, 1, 1])
    q = tf.round(images * 255.0)
    return tf.floor(q / div) * div / 255.0


def solarize(images, m):
    threshold = tf.reshape(1.0 - tf.abs(m), [-1, 1, 1, 1])
    return tf.where(images >= threshold, 1.0 - images, images)


def _affine(images, rows):
    """rows: list of 8 (N,) tensors / floats, output->input projective map."""
    n = tf.shape(images)[0]
    cols = [tf.broadcast_to(tf.cast(r, tf.float32), [n]) for r in rows]
    return affine(images, tf.stack(cols, axis=1))


def rotate(images, m):
    hw = tf.cast(tf.shape(images)[1:3], tf.float32)
    angles = m * (30.0 * math.pi / 180.0)  # counter-clockwise, as Rotation
    return affine(images, rotation_matrix(angles, hw[0], hw[1]))


def shear_x(images, m):
    """x_in = x + 0.3 m y about the image's top-left corner (the pixel edge, as the paper's PIL code and
    torchvision; in pixel-centre indices that is an offset of 0.5 * 0.3 m)."""
    s = m * 0.3
    return _affine(images, [1.0, s, 0.5 * s, 0.0, 1.0, 0.0, 0.0, 0.0])


def shear_y(images, m):
    """y_in = y + 0.3 m x about the top-left corner, see `shear_x`."""
    s = m * 0.3
    return _affine(images, [1.0, 0.0, 0.0, s, 1.0, 0.5 * s, 0.0, 0.0])


def _shift(m, size, whole_pixels: bool):
    shift = m * tf.cast(size, tf.float32) / 3.0
    return tf.where(shift < 0, tf.math.ceil(shift), tf.floor(shift)) if whole_pixels else shift


def translate_x(images, m, whole_pixels: bool = False):
    """Shifts content right by m W / 3 pixels (truncated toward zero with `whole_pixels`, as the paper
    and torchvision)."""
    tx = _shift(m, tf.shape(images)[2], whole_pixels)
    return affine(images, translation_matrix(tx, tf.zeros_like(tx)))


def translate_y(images, m, whole_pixels: bool = False):
    """Shifts content down by m H / 3 pixels, see `translate_x`."""
    ty = _shift(m, tf.shape(images)[1], whole_pixels)
    return affine(images, translation_matrix(tf.zeros_like(ty), ty))


def _factor(m):
    """torchvision's factor of the enhance ops: 1 + 0.9 m (m signed, up to 1 at severity 10)."""
    return 1.0 + 0.9 * tf.reshape(tf.cast(m, tf.float32), [-1])


def brightness(images, m):
    return tf.clip_by_value(images * tf.reshape(_factor(m), [-1, 1, 1, 1]), 0.0, 1.0)


def color(images, m):
    return adjust_saturation(images, _factor(m))


def contrast(images, m):
    return adjust_contrast(images, _factor(m))


def sharpness(images, m):
    """torchvision's `adjust_sharpness` (PIL's ImageEnhance.Sharpness): blend with a 3x3 smoothed image
    (weights 1, centre 5, over 13) whose border pixels are the original's; factor 1 + 0.9 m."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    c = images.shape[-1] or 3
    smooth = tf.nn.depthwise_conv2d(images, tf.tile(kernel[:, :, None, None], [1, 1, c, 1]), [1, 1, 1, 1], "VALID")
    smooth = tf.pad(smooth, [[0, 0], [1, 1], [1, 1], [0, 0]])
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    inner = tf.pad(tf.ones([h - 2, w - 2], tf.bool), [[1, 1], [1, 1]], constant_values=False)[None, :, :, None]
    degenerate = tf.where(inner, smooth, images)
    f = tf.reshape(_factor(m), [-1, 1, 1, 1])
    return tf.clip_by_value(f * images + (1.0 - f) * degenerate, 0.0, 1.0)


_FUNCTIONS = (autocontrast, equalize, posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y)
_EXTRA_FUNCTIONS = (brightness, color, contrast, sharpness)


def _gamma(shape, seed, alpha):
    return tf.random.stateless_gamma(shape, seed, alpha=tf.constant(alpha, tf.float32))


@register
class AugMix(Op):
    """AugMix with recorded chains.

    Args:
        severity: 1-10, the largest magnitude level (magnitudes lie in [-severity/10, severity/10]).
        width: number of chains mixed.
        depth: ops per chain; -1 draws 1-3 per chain and image.
        alpha: Dirichlet and Beta concentration.
        all_ops: False (default): the paper's op list, `AUGMIX_OPS`; True: `AUGMIX_ALL_OPS`, which adds
            brightness, color (saturation), contrast and sharpness with factors 1 + 0.9 m, as
            torchvision's `AugMix(all_ops=True)` (torchvision's default).
        whole_pixels: False (default): translations of m W / 3 pixels, sub-pixel (bilinear); True:
            truncated toward zero to whole pixels, as the paper's code (`int_parameter`) and
            torchvision (`int(magnitude)`).

    Sampling follows the AugMix paper's code: a magnitude level ~ U(0.1, severity) / 10 per step, a
    sign for the signed ops, a chain depth per chain and image. torchvision instead draws the level
    from severity discrete bins k / 9 (k < severity), the depth once per chain for the whole call,
    and unsigned levels for posterize and solarize; the ops themselves match it on the same
    magnitudes (docs/parity).

    Records:
        `augmix_ops` (B, width, 3 or depth) int32: op index into `AUGMIX_OPS` (`AUGMIX_ALL_OPS` with
        all_ops), `len(ops)` = unused step (9, or 13 with all_ops);
        `augmix_mags` (B, width, steps): signed magnitudes; `augmix_weights` (B, width): chain
        weights (sum to 1); `augmix_mix` (B, 1): weight of the mixed image against the original.

    Example:
    >>> from keras_eqssl.augment import AugMix
    >>> augmix = AugMix(severity=3, width=3)
    >>> images = tf.random.stateless_uniform((2, 16, 16, 3), seed=(0, 1))
    >>> mixed, params = augmix(images, seed=0)
    >>> {k: tuple(v.shape) for k, v in sorted(params.items())}
    {'augmix_mags': (2, 3, 3), 'augmix_mix': (2, 1), 'augmix_ops': (2, 3, 3), 'augmix_weights': (2, 3)}
    >>> bool(tf.reduce_all(augmix.apply(images, params) == mixed))  # the record replays it bit for bit
    True
    """

    def __init__(
        self,
        severity: int = 3,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = False,
        whole_pixels: bool = False,
        name: str = "augmix",
    ):
        super().__init__(name)
        for field, value in (("all_ops", all_ops), ("whole_pixels", whole_pixels)):
            if not isinstance(value, bool):
                raise ValueError(f"AugMix: {field} must be True or False; received {field}={value!r}.")
        self.all_ops, self.whole_pixels = all_ops, whole_pixels
        self.op_names = AUGMIX_ALL_OPS if all_ops else AUGMIX_OPS
        functions = list(_FUNCTIONS + _EXTRA_FUNCTIONS if all_ops else _FUNCTIONS)
        if whole_pixels:
            for fn in (translate_x, translate_y):
                functions[functions.index(fn)] = functools.partial(fn, whole_pixels=True)
        self.functions = tuple(functions)
        self.no_op = len(self.op_names)
        if not 1 <= int(severity) <= 10:
            raise ValueError(f"AugMix: severity must be in [1, 10]; received severity={severity}.")
        if int(width) < 1:
            raise ValueError(f"AugMix: width must be >= 1; received width={width}.")
        if int(depth) == 0 or int(depth) < -1:
            raise ValueError(f"AugMix: depth must be -1 (random 1-3) or >= 1; received depth={depth}.")
        if float(alpha) <= 0:
            raise ValueError(f"AugMix: alpha must be > 0; received alpha={alpha}.")
        self.severity, self.width, self.depth, self.alpha = int(severity), int(width), int(depth), float(alpha)
        self.steps = 3 if self.depth == -1 else self.depth

    def param_specs(self):
        n, s, w = self.name, self.steps, self.width
        return [
            ParamSpec(
                f"{n}_ops",
                (w, s),
                CATEGORICAL,
                0,
                self.no_op,
                "int32",
                doc=f"op index into {self.op_names}; {self.no_op} = unused",
            ),
            ParamSpec(f"{n}_mags", (w, s), CONTINUOUS, -self.severity / 10, self.severity / 10, doc="signed magnitude"),
            ParamSpec(f"{n}_weights", (w,), CONTINUOUS, 0.0, 1.0, doc="chain mixing weights"),
            ParamSpec(f"{n}_mix", (1,), CONTINUOUS, 0.0, 1.0, doc="weight of the mix vs the original"),
        ]

    def sample(self, batch_size, seed, image_size=None):
        w, s = self.width, self.steps
        ops = tf.random.stateless_uniform([batch_size, w, s], draw(seed, 0), 0, self.no_op, tf.int32)
        if self.depth == -1:
            depth = tf.random.stateless_uniform([batch_size, w, 1], draw(seed, 1), 1, 4, tf.int32)
            ops = tf.where(tf.range(s)[None, None] < depth, ops, self.no_op)
        level = uniform([batch_size, w, s], seed, 2, 0.1, float(self.severity)) / 10.0
        sign = tf.where(uniform([batch_size, w, s], seed, 3, 0.0, 1.0) < 0.5, -1.0, 1.0)
        mags = tf.where(ops == self.no_op, 0.0, level * sign)
        g = _gamma([batch_size, w], draw(seed, 4), self.alpha)
        weights = g / tf.reduce_sum(g, axis=1, keepdims=True)
        a, b = _gamma([batch_size, 1], draw(seed, 5), self.alpha), _gamma([batch_size, 1], draw(seed, 6), self.alpha)
        return {
            f"{self.name}_ops": ops,
            f"{self.name}_mags": mags,
            f"{self.name}_weights": weights,
            f"{self.name}_mix": a / (a + b),
        }

    def apply(self, images, params):
        ops, mags = params[f"{self.name}_ops"], params[f"{self.name}_mags"]
        weights, mix = params[f"{self.name}_weights"], params[f"{self.name}_mix"]
        mixed = tf.zeros_like(images)
        for c in range(self.width):
            chain = images
            for d in range(self.steps):
                m = mags[:, c, d]

                def branch(fn, m=m):
                    return lambda imgs, idx: tf.clip_by_value(fn(imgs, tf.gather(m, idx)), 0.0, 1.0)

                branches = [branch(fn) for fn in self.functions] + [lambda imgs, idx: imgs]
                chain = switch_per_image(chain, ops[:, c, d], branches)
            mixed += tf.reshape(weights[:, c], [-1, 1, 1, 1]) * chain
        m = tf.reshape(mix, [-1, 1, 1, 1])
        return tf.clip_by_value((1.0 - m) * images + m * mixed, 0.0, 1.0)

    def identity_params(self, batch_size):
        w, s = self.width, self.steps
        return {
            f"{self.name}_ops": tf.fill([batch_size, w, s], self.no_op),
            f"{self.name}_mags": tf.zeros([batch_size, w, s]),
            f"{self.name}_weights": tf.fill([batch_size, w], 1.0 / w),
            f"{self.name}_mix": tf.zeros([batch_size, 1]),
        }

    def get_config(self):
        return {
            "severity": self.severity,
            "width": self.width,
            "depth": self.depth,
            "alpha": self.alpha,
            "all_ops": self.all_ops,
            "whole_pixels": self.whole_pixels,
            "name": self.name,
        }
