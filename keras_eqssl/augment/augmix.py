"""AugMix (Hendrycks et al., ICLR 2020) with every chain, op, magnitude and weight recorded.

    x_aug = (1 - m) * x + m * sum_c w_c * chain_c(x),   w ~ Dirichlet(alpha), m ~ Beta(alpha, alpha)

Each chain is 1-3 ops (or `depth`) drawn from the AugMix set below with a signed magnitude in
[-severity/10, severity/10]. Keras's AugMix draws the ops with Python `random` at trace time (one
choice per batch) and keras-cv's runs per image in a map; ours draws per image and replays the
recorded choices exactly (`apply(images, params)` is bit-identical).
"""

from __future__ import annotations

import math

import tensorflow as tf

from keras_eqssl.augment import _keras_cv
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
NO_OP = len(AUGMIX_OPS)  # op index recorded for unused chain steps


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
    return _keras_cv.affine(images, tf.stack(cols, axis=1))


def rotate(images, m):
    hw = tf.cast(tf.shape(images)[1:3], tf.float32)
    angles = m * (30.0 * math.pi / 180.0)  # counter-clockwise, as Rotation
    return _keras_cv.affine(images, _keras_cv.rotation_matrix(angles, hw[0], hw[1]))


def shear_x(images, m):
    return _affine(images, [1.0, m * 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def shear_y(images, m):
    return _affine(images, [1.0, 0.0, 0.0, m * 0.3, 1.0, 0.0, 0.0, 0.0])


def translate_x(images, m):
    w = tf.cast(tf.shape(images)[2], tf.float32)
    return _keras_cv.affine(images, _keras_cv.translation_matrix(m * w / 3.0, tf.zeros_like(m)))


def translate_y(images, m):
    h = tf.cast(tf.shape(images)[1], tf.float32)
    return _keras_cv.affine(images, _keras_cv.translation_matrix(tf.zeros_like(m), m * h / 3.0))


_FUNCTIONS = (autocontrast, equalize, posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y)


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

    Records:
        `augmix_ops` (B, width, 3 or depth) int32: op index into `AUGMIX_OPS`, 9 = unused step;
        `augmix_mags` (B, width, steps): signed magnitudes; `augmix_weights` (B, width): chain
        weights (sum to 1); `augmix_mix` (B, 1): weight of the mixed image against the original.
    """

    def __init__(self, severity: int = 3, width: int = 3, depth: int = -1, alpha: float = 1.0, name: str = "augmix"):
        super().__init__(name)
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
                f"{n}_ops", (w, s), CATEGORICAL, 0, NO_OP, "int32", doc=f"op index into {AUGMIX_OPS}; {NO_OP} = unused"
            ),
            ParamSpec(f"{n}_mags", (w, s), CONTINUOUS, -self.severity / 10, self.severity / 10, doc="signed magnitude"),
            ParamSpec(f"{n}_weights", (w,), CONTINUOUS, 0.0, 1.0, doc="chain mixing weights"),
            ParamSpec(f"{n}_mix", (1,), CONTINUOUS, 0.0, 1.0, doc="weight of the mix vs the original"),
        ]

    def sample(self, batch_size, seed, image_size=None):
        w, s = self.width, self.steps
        ops = tf.random.stateless_uniform([batch_size, w, s], draw(seed, 0), 0, len(AUGMIX_OPS), tf.int32)
        if self.depth == -1:
            depth = tf.random.stateless_uniform([batch_size, w, 1], draw(seed, 1), 1, 4, tf.int32)
            ops = tf.where(tf.range(s)[None, None] < depth, ops, NO_OP)
        level = uniform([batch_size, w, s], seed, 2, 0.1, float(self.severity)) / 10.0
        sign = tf.where(uniform([batch_size, w, s], seed, 3, 0.0, 1.0) < 0.5, -1.0, 1.0)
        mags = tf.where(ops == NO_OP, 0.0, level * sign)
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

                branches = [branch(fn) for fn in _FUNCTIONS] + [lambda imgs, idx: imgs]
                chain = switch_per_image(chain, ops[:, c, d], branches)
            mixed += tf.reshape(weights[:, c], [-1, 1, 1, 1]) * chain
        m = tf.reshape(mix, [-1, 1, 1, 1])
        return tf.clip_by_value((1.0 - m) * images + m * mixed, 0.0, 1.0)

    def identity_params(self, batch_size):
        w, s = self.width, self.steps
        return {
            f"{self.name}_ops": tf.fill([batch_size, w, s], NO_OP),
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
            "name": self.name,
        }
