"""Random resized crop with the box recorded as normalised (y0, x0, h, w)."""

from __future__ import annotations

import math

import tensorflow as tf

from keras_eqssl.augment.base import CONTINUOUS, Op, ParamSpec, check_range, register, uniform

_ATTEMPTS = 10  # torchvision's number of tries before the central-crop fallback


def boxes_yxyx(crop: tf.Tensor) -> tf.Tensor:
    """(B, 4) (y0, x0, h, w) -> (B, 4) (y0, x0, y1, x1), the form `tf.image.crop_and_resize` takes."""
    y0, x0, h, w = tf.unstack(crop, axis=-1)
    return tf.stack([y0, x0, y0 + h, x0 + w], axis=-1)


@register
class RandomResizedCrop(Op):
    """Crops a random box (area fraction `scale`, aspect ratio `ratio`) and resizes it.

    Sampling follows torchvision: up to 10 tries of (area, log-ratio) per image, the first box
    that fits is taken, else a central crop with the ratio clamped to `ratio`. All tries are drawn
    at once, so it is vectorised over the batch.

    Applying uses `tf.image.crop_and_resize` (bilinear) on the recorded box, whose coordinates
    map 0 to the first pixel centre and 1 to the last.

    Args:
        size: output (height, width), one int for square, or None for the input's size (the
            parameter probe's `crop` family).
        scale: (min, max) fraction of the image area, within (0, 1].
        ratio: (min, max) width / height of the box in pixels.
        name: key prefix of the recorded parameters.

    Records:
        `crop` (B, 4): (y0, x0, h, w) normalised to the input image;
        `crop_scale` (B, 1): area fraction h * w; `crop_ratio` (B, 1): width / height in pixels.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), name: str = "crop"):
        super().__init__(name)
        if size is None:
            self.size = None
        else:
            self.size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"RandomResizedCrop: size must be a positive int or (h, w); received size={size!r}.")
        self.scale = check_range("RandomResizedCrop", "scale", scale, low=0.0, high=1.0)
        if self.scale[0] <= 0:
            raise ValueError(f"RandomResizedCrop: scale must be > 0; received scale={scale!r}.")
        self.ratio = check_range("RandomResizedCrop", "ratio", ratio, low=1e-6)

    def param_specs(self):
        n = self.name
        return [
            ParamSpec(n, (4,), CONTINUOUS, 0.0, 1.0, names=("y0", "x0", "h", "w"), doc="crop box, normalised"),
            ParamSpec(f"{n}_scale", (1,), CONTINUOUS, *self.scale, doc="area fraction of the box"),
            ParamSpec(f"{n}_ratio", (1,), CONTINUOUS, *self.ratio, doc="width / height of the box in pixels"),
        ]

    def sample(self, batch_size, seed, image_size=None):
        if image_size is None:
            aspect = tf.ones([batch_size], tf.float32)
        else:
            hw = tf.cast(image_size, tf.float32)
            aspect = tf.fill([batch_size], hw[1] / hw[0])  # W / H of the input
        shape = [batch_size, _ATTEMPTS]
        area = uniform(shape, seed, 0, *self.scale)
        log_ratio = uniform(shape, seed, 1, math.log(self.ratio[0]), math.log(self.ratio[1]))
        ratio = tf.exp(log_ratio)
        a = aspect[:, None]
        w = tf.sqrt(area * ratio / a)  # w_px = sqrt(area * H * W * r), normalised by W
        h = tf.sqrt(area * a / ratio)
        fits = tf.logical_and(w <= 1.0, h <= 1.0)
        first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
        any_fits = tf.reduce_any(fits, axis=1)
        pick = lambda t: tf.gather(t, first, batch_dims=1)  # noqa: E731
        # Fallback: the largest central box whose ratio is clamped into the allowed range.
        lo, hi = self.ratio
        fb_w = tf.where(aspect < lo, tf.ones_like(aspect), tf.where(aspect > hi, hi / aspect, tf.ones_like(aspect)))
        fb_h = tf.where(aspect < lo, aspect / lo, tf.ones_like(aspect))
        h = tf.where(any_fits, pick(h), fb_h)
        w = tf.where(any_fits, pick(w), fb_w)
        u = uniform([batch_size, 2], seed, 2, 0.0, 1.0)
        y0 = tf.where(any_fits, u[:, 0] * (1.0 - h), (1.0 - h) / 2.0)
        x0 = tf.where(any_fits, u[:, 1] * (1.0 - w), (1.0 - w) / 2.0)
        crop = tf.stack([y0, x0, h, w], axis=1)
        return {
            self.name: crop,
            f"{self.name}_scale": (h * w)[:, None],
            f"{self.name}_ratio": (w / h * aspect)[:, None],
        }

    def apply(self, images, params):
        boxes = boxes_yxyx(params[self.name])
        index = tf.range(tf.shape(images)[0])
        size = tf.shape(images)[1:3] if self.size is None else self.size
        out = tf.image.crop_and_resize(images, boxes, index, size, method="bilinear")
        return tf.clip_by_value(out, 0.0, 1.0)

    def identity_params(self, batch_size):
        full = tf.tile(tf.constant([[0.0, 0.0, 1.0, 1.0]]), [batch_size, 1])
        return {
            self.name: full,
            f"{self.name}_scale": tf.ones([batch_size, 1]),
            f"{self.name}_ratio": tf.ones([batch_size, 1]),
        }

    def output_size(self, input_size):
        return input_size if self.size is None else self.size

    def get_config(self):
        return {
            "size": None if self.size is None else list(self.size),
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "name": self.name,
        }
