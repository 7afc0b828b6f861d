"""Colour ops: jitter (factors and their random order), grayscale, solarize."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.base import (
    CATEGORICAL,
    CONTINUOUS,
    Op,
    ParamSpec,
    check_range,
    register,
    switch_per_image,
    uniform,
)
from keras_eqssl.augment.bernoulli_op import BernoulliOp

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _factor_range(owner, field, value, centre):
    """torchvision's convention: a number x means [centre - x, centre + x]; a pair is taken as is."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{owner}: {field} must be >= 0; received {field}={value}.")
        value = (centre - value, centre + value)
    lo, hi = check_range(owner, field, value)
    return (max(lo, 0.0), hi) if centre == 1.0 else (lo, hi)


def adjust_brightness(images, factor):
    """Multiplies pixel values by `factor` (B,) (0 = black, 1 = unchanged), as torchvision."""
    return tf.clip_by_value(images * tf.reshape(factor, [-1, 1, 1, 1]), 0.0, 1.0)


def solarize(images, threshold: float):
    """Inverts pixels at or above `threshold` in [0, 1] (computed on the 0-255 scale, as keras-cv's
    `Solarization`, whose outputs these equal bit for bit)."""
    scaled = tf.clip_by_value(images * 255.0, 0.0, 255.0)
    return tf.where(scaled < tf.constant(threshold, tf.float32) * 255.0, scaled, 255.0 - scaled) / 255.0


# ITU-R 601 luma, the weights of tf.image.rgb_to_grayscale.
_LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)


def luma(images, channels: int = 1):
    """(B, H, W, channels) luma of (B, H, W, 3) images, repeated to `channels`.

    One (pixels, 3) x (3, channels) matmul: the result of tf.image.rgb_to_grayscale (to 1e-7),
    about 2x cheaper on CPU, and with the repeat to three channels folded in. (A 1x1 Conv2D is as
    fast, but Grappler's MulConvPushDown aborts the process on it when the seed is a constant.)
    """
    weights = tf.tile(tf.constant(_LUMA_WEIGHTS, images.dtype)[:, None], [1, channels])
    out = tf.matmul(tf.reshape(images, [-1, 3]), weights)
    out = tf.reshape(out, tf.concat([tf.shape(images)[:-1], [channels]], axis=0))
    out.set_shape(images.shape[:-1].concatenate([channels]))
    return out


def adjust_hue(images, delta):
    """Rotates hue by `delta` (B,) turns in HSV space, wrapping around, as torchvision.

    Runs TF's fused AdjustHue kernel image by image (it takes one delta per call): it keeps each
    pixel's min and max channel and moves the middle one, which is the HSV rotation, in one pass
    instead of rgb_to_hsv / shift / hsv_to_rgb (about 2.3x faster at 224 px, equal to 1e-6).
    """
    out = tf.map_fn(
        lambda args: tf.image.adjust_hue(args[0], args[1]),
        (images, tf.reshape(tf.cast(delta, tf.float32), [-1])),
        fn_output_signature=tf.TensorSpec(images.shape[1:], images.dtype),
    )
    return tf.clip_by_value(out, 0.0, 1.0)


def _blend(images, other, factor):
    """factor * images + (1 - factor) * other, clipped; torchvision's `_blend`."""
    f = tf.reshape(factor, [-1, 1, 1, 1])
    return tf.clip_by_value(f * images + (1.0 - f) * other, 0.0, 1.0)


def adjust_contrast(images, factor):
    """Blends with the mean luma of each image (0 = flat gray, 1 = unchanged), as torchvision."""
    mean = tf.reduce_mean(luma(images), axis=[1, 2, 3], keepdims=True)
    return _blend(images, mean, factor)


def adjust_saturation(images, factor):
    """Blends with the image's luma (0 = gray, 1 = unchanged, >1 more saturated), as torchvision.

    A blend rather than keras-cv's HSV round trip: the blend is torchvision's definition
    (SimCLR's), and it is about 4x cheaper at 224 px.
    """
    return _blend(images, luma(images), factor)


# --- PIL's arithmetic (torchvision's ColorJitter on PIL images) ---------------------------------
# Pillow works on uint8: ImageEnhance blends with Image.blend, which truncates to uint8; "L" is
# (19595 R + 38470 G + 7471 B + 2^15) >> 16; HSV is Pillow's own uint8 conversion. The functions
# below take and return float32 images in [0, 1] holding uint8 levels (k / 255).
def _levels(images):
    return tf.round(images * 255.0)


def _pil_blend(degenerate, levels, factor):
    """Image.blend(degenerate, image, factor) on levels: degenerate + factor * (image - degenerate), clipped, truncated."""
    f = tf.reshape(tf.cast(factor, tf.float32), [-1, 1, 1, 1])
    return tf.floor(tf.clip_by_value(degenerate + f * (levels - degenerate), 0.0, 255.0)) / 255.0


def _pil_luma(levels):
    """Pillow's "L" conversion of (B, H, W, 3) levels, (B, H, W, 1) levels."""
    q = tf.cast(levels, tf.int32)
    weighted = 19595 * q[..., :1] + 38470 * q[..., 1:2] + 7471 * q[..., 2:] + (1 << 15)
    return tf.cast(tf.bitwise.right_shift(weighted, 16), tf.float32)


def pil_adjust_brightness(images, factor):
    """PIL's ImageEnhance.Brightness: a blend with black, truncated to uint8."""
    return _pil_blend(0.0, _levels(images), factor)


def pil_adjust_contrast(images, factor):
    """PIL's ImageEnhance.Contrast: a blend with the rounded mean of the "L" image."""
    levels = _levels(images)
    mean = tf.floor(tf.reduce_mean(tf.cast(_pil_luma(levels), tf.float64), axis=[1, 2, 3], keepdims=True) + 0.5)
    return _pil_blend(tf.cast(mean, tf.float32), levels, factor)


def pil_adjust_saturation(images, factor):
    """PIL's ImageEnhance.Color: a blend with the "L" image."""
    levels = _levels(images)
    return _pil_blend(_pil_luma(levels), levels, factor)


def _c_float(x):
    """A float64 value stored in a C `float` (Pillow mixes float and double steps)."""
    return tf.cast(tf.cast(x, tf.float32), tf.float64)


def _c_round(x):
    """C's round() of x >= 0 (half away from zero; tf.round rounds half to even), clipped to uint8."""
    return tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0)


def _pil_rgb_to_hsv(levels):
    """Pillow's rgb2hsv on levels: (h, s, v) uint8 levels as float64, with its float / double steps."""
    f32 = _c_float
    r, g, b = tf.unstack(tf.cast(levels, tf.float64), axis=-1)
    maxc = tf.maximum(r, tf.maximum(g, b))
    minc = tf.minimum(r, tf.minimum(g, b))
    cr = tf.maximum(maxc - minc, 1.0)
    s = f32(tf.cast(maxc - minc, tf.float32) / tf.cast(tf.maximum(maxc, 1.0), tf.float32))
    rc, gc, bc = (tf.cast(tf.cast(maxc - c, tf.float32) / tf.cast(cr, tf.float32), tf.float64) for c in (r, g, b))
    h = tf.where(r == maxc, f32(bc - gc), tf.where(g == maxc, f32(2.0 + rc - bc), f32(4.0 + gc - rc)))
    h = f32(tf.math.floormod(h / 6.0 + 1.0, 1.0))
    grey = maxc == minc
    zero = tf.zeros_like(h)
    uh = tf.where(grey, zero, tf.clip_by_value(tf.floor(h * 255.0), 0.0, 255.0))
    us = tf.where(grey, zero, tf.clip_by_value(tf.floor(s * 255.0), 0.0, 255.0))
    return uh, us, maxc


def _pil_hsv_to_rgb(h, s, v):
    """Pillow's hsv2rgb on uint8 levels (float64 in, float32 levels (..., 3) out)."""
    f32, half_up = _c_float, _c_round
    sector = tf.floor(h * 6.0 / 255.0)
    f = f32(h * 6.0 / 255.0 - sector)
    fs = f32(s / 255.0)
    p = half_up(v * (1.0 - fs))
    q = half_up(v * (1.0 - f32(fs * f)))
    t = half_up(v * (1.0 - fs * (1.0 - f)))
    i = tf.cast(sector, tf.int32) % 6
    options = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = [tf.zeros_like(v)] * 3
    for k, option in enumerate(options):
        rgb = [tf.where(i == k, o, c) for o, c in zip(option, rgb)]
    rgb = [tf.where(s == 0.0, v, c) for c in rgb]
    return tf.cast(tf.stack(rgb, axis=-1), tf.float32)


def pil_adjust_hue(images, delta):
    """torchvision's adjust_hue on PIL images: Pillow's uint8 HSV, hue += int(255 delta) mod 256."""
    h, s, v = _pil_rgb_to_hsv(_levels(images))
    shift = tf.cast(tf.cast(tf.cast(delta, tf.float64) * 255.0, tf.int32), tf.float64)  # toward zero
    h = tf.math.floormod(h + tf.reshape(shift, [-1, 1, 1]), 256.0)
    return _pil_hsv_to_rgb(h, s, v) / 255.0


CONVENTIONS = ("tensor", "pil")


@register
class ColorJitter(Op):
    """Brightness, contrast, saturation and hue changes applied in a random per-image order.

    The four adjustments follow torchvision's definitions (SimCLR's): brightness multiplies,
    contrast blends with the mean luma, saturation blends with the pixel's luma, hue rotates
    in HSV. Each image runs each adjustment once, in its own recorded order (`color_order` holds
    the op index run at each stage: torchvision's `fn_idx`, a fresh permutation per image).

    `convention` chooses the arithmetic:

    - `"tensor"` (default): torchvision on float tensors (`transforms.v2` on tensors, STL's): float
      throughout, hue by an HSV round trip in float. Equal to it to about 1e-6 (docs/parity).
    - `"pil"`: torchvision on PIL images (the PIL pipelines: GTSA, DINO, BYOL/SimCLR in PyTorch):
      every op rounds to uint8 as Pillow does (blends truncate, luma is Pillow's integer "L",
      contrast blends with its rounded mean, hue shifts Pillow's uint8 HSV hue by int(255 h) of
      256 levels). The input is rounded to uint8 levels first. Up to about 15 uint8 levels from
      "tensor" on the hue op, about 1 on the others.

    Args:
        brightness, contrast, saturation: x >= 0 samples a factor in [max(0, 1 - x), 1 + x]
            (or give a (min, max) pair); 1 leaves the image unchanged.
        hue: x in [0, 0.5] samples a hue rotation in [-x, x] turns.
        convention: `"tensor"` or `"pil"`, see above.
        name: key prefix of the recorded parameters.

    Records:
        `color` (B, 4): (brightness, contrast, saturation, hue) factors;
        `color_order` (B, 4) int32: the order the four adjustments ran in, e.g. [2, 0, 3, 1]
        means saturation first, then brightness, hue, contrast.

    Example:
    >>> from keras_eqssl.augment import ColorJitter
    >>> jitter = ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    >>> params = jitter.sample(4, seed=0)
    >>> {k: tuple(v.shape) for k, v in sorted(params.items())}
    {'color': (4, 4), 'color_order': (4, 4)}
    >>> sorted(params["color_order"][0].numpy().tolist())  # a permutation of the four adjustments
    [0, 1, 2, 3]
    >>> tuple(jitter.apply(tf.random.stateless_uniform((4, 8, 8, 3), seed=(0, 1)), params).shape)
    (4, 8, 8, 3)
    """

    def __init__(
        self,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.1,
        convention: str = "tensor",
        name: str = "color",
    ):
        super().__init__(name)
        if convention not in CONVENTIONS:
            raise ValueError(
                f"ColorJitter: convention must be one of {CONVENTIONS}; received convention={convention!r}."
            )
        self.convention = convention
        self.brightness = _factor_range("ColorJitter", "brightness", brightness, 1.0)
        self.contrast = _factor_range("ColorJitter", "contrast", contrast, 1.0)
        self.saturation = _factor_range("ColorJitter", "saturation", saturation, 1.0)
        self.hue = _factor_range("ColorJitter", "hue", hue, 0.0)
        if self.hue[0] < -0.5 or self.hue[1] > 0.5:
            raise ValueError(f"ColorJitter: hue must lie within [-0.5, 0.5]; received hue={hue!r}.")

    @property
    def ranges(self):
        return (self.brightness, self.contrast, self.saturation, self.hue)

    def param_specs(self):
        lo = min(r[0] for r in self.ranges)
        hi = max(r[1] for r in self.ranges)
        return [
            ParamSpec(self.name, (4,), CONTINUOUS, lo, hi, names=JITTER_OPS, doc="jitter factors; hue in turns"),
            ParamSpec(
                f"{self.name}_order",
                (4,),
                CATEGORICAL,
                0,
                3,
                "int32",
                names=("first", "second", "third", "fourth"),
                doc="index into (brightness, contrast, saturation, hue), in the order applied",
            ),
        ]

    def sample(self, batch_size, seed, image_size=None):
        factors = tf.stack([uniform([batch_size], seed, i, *r) for i, r in enumerate(self.ranges)], axis=1)
        order = tf.argsort(uniform([batch_size, 4], seed, 4, 0.0, 1.0), axis=1, stable=True)
        return {self.name: factors, f"{self.name}_order": tf.cast(order, tf.int32)}

    def apply(self, images, params):
        factors = params[self.name]

        def branch(j, fn):
            return lambda imgs, idx: fn(imgs, tf.gather(factors[:, j], idx))

        if self.convention == "pil":
            fns = (pil_adjust_brightness, pil_adjust_contrast, pil_adjust_saturation, pil_adjust_hue)
        else:
            fns = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        branches = [branch(j, fn) for j, fn in enumerate(fns)]
        order = params[f"{self.name}_order"]
        for stage in range(4):
            images = switch_per_image(images, order[:, stage], branches)
        return images

    def identity_params(self, batch_size):
        factors = tf.tile(tf.constant([[1.0, 1.0, 1.0, 0.0]]), [batch_size, 1])
        order = tf.tile(tf.range(4, dtype=tf.int32)[None], [batch_size, 1])
        return {self.name: factors, f"{self.name}_order": order}

    def get_config(self):
        return {
            "brightness": list(self.brightness),
            "contrast": list(self.contrast),
            "saturation": list(self.saturation),
            "hue": list(self.hue),
            "convention": self.convention,
            "name": self.name,
        }


@register
class Grayscale(BernoulliOp):
    """Turns images gray (luma repeated to 3 channels) with probability `p`.

    Records `grayscale` (B, 1): 1.0 where the image was made gray.

    Example:
    >>> from keras_eqssl.augment import Grayscale
    >>> gray, params = Grayscale(p=1.0)(tf.random.stateless_uniform((2, 4, 4, 3), seed=(0, 1)), seed=0)
    >>> params["grayscale"].numpy().ravel().tolist(), bool(tf.reduce_all(gray[..., 0] == gray[..., 2]))
    ([1.0, 1.0], True)
    """

    applied_doc = "1 = made grayscale"

    def __init__(self, p: float = 0.2, name: str = "grayscale"):
        super().__init__(p, name)

    def transform(self, images) -> tf.Tensor:
        return luma(images, channels=3)


@register
class Solarize(BernoulliOp):
    """Inverts pixels at or above `threshold` with probability `p`.

    Records `solarize` (B, 1): 1.0 where the image was solarized.

    Example:
    >>> import numpy as np
    >>> from keras_eqssl.augment import Solarize
    >>> pixels = tf.constant([[[[0.2] * 3, [0.8] * 3]]])  # one 1 x 2 image
    >>> out = Solarize(threshold=0.5).apply(pixels, {"solarize": tf.constant([[1.0]])})
    >>> np.round(out[0, 0, :, 0].numpy().astype(float), 6).tolist()  # 0.8 is at or above 0.5: inverted
    [0.2, 0.2]
    """

    applied_doc = "1 = solarized"

    def __init__(self, p: float = 0.2, threshold: float = 0.5, name: str = "solarize"):
        super().__init__(p, name)
        self.threshold = float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"Solarize: threshold must be in [0, 1]; received threshold={threshold}.")

    def transform(self, images) -> tf.Tensor:
        return solarize(images, self.threshold)

    def get_config(self):
        return {"p": self.p, "threshold": self.threshold, "name": self.name}
