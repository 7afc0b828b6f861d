"""Gaussian blur with a per-image sigma (keras-cv and Keras draw one sigma per batch)."""

from __future__ import annotations

import math

import tensorflow as tf

from keras_eqssl.augment.base import CONTINUOUS, Op, ParamSpec, check_range, register, uniform


def gaussian_kernels(sigma, size: int) -> tf.Tensor:
    """(B, size) normalised 1-D Gaussian kernels; sigma <= 0 gives the identity kernel."""
    x = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
    s = tf.maximum(tf.reshape(sigma, [-1, 1]), 1e-6)
    k = tf.exp(-(x[None] ** 2) / (2.0 * s**2))
    return k / tf.reduce_sum(k, axis=1, keepdims=True)


PADDINGS = ("reflect", "symmetric")


def blur(images, sigma, size: int, padding: str = "reflect") -> tf.Tensor:
    """Separable Gaussian blur, one sigma per image.

    Args:
        images: (B, H, W, C) float. sigma: (B,) or (B, 1). size: odd kernel size.
        padding: `"reflect"` mirrors about the border pixel (d c b | a b c d: torchvision's
            `gaussian_blur`), `"symmetric"` repeats it (c b a | a b c d: what PIL's blur does).
    """
    if images.shape[0] == 0:
        return images
    return tf.cond(tf.shape(images)[0] > 0, lambda: _blur(images, sigma, size, padding), lambda: images)


def _blur(images, sigma, size: int, padding: str = "reflect") -> tf.Tensor:
    b, h, w, c = (tf.shape(images)[i] for i in range(4))
    kernels = gaussian_kernels(sigma, size)  # (B, K)
    # Fold the batch into channels so one depthwise conv runs every image with its own kernel.
    x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, h, w, b * c])
    k = tf.repeat(tf.transpose(kernels), repeats=c, axis=1)  # (K, B*C), channel-major per image
    pad = size // 2
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode=padding.upper())
    x = tf.nn.depthwise_conv2d(x, tf.reshape(k, [size, 1, -1, 1]), [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, tf.reshape(k, [1, size, -1, 1]), [1, 1, 1, 1], "VALID")
    out = tf.transpose(tf.reshape(x, [h, w, b, c]), [2, 0, 1, 3])
    out.set_shape(images.shape)
    return tf.clip_by_value(out, 0.0, 1.0)


@register
class GaussianBlur(Op):
    """Blurs each image with its own sigma ~ U(sigma).

    The kernel is a sampled Gaussian truncated to `kernel_size` taps and normalised, torchvision's
    `gaussian_blur(kernel_size, sigma)` (equal to it to about 1e-6 at the same kernel size and
    padding). Which kernel size:

    - default: about 10% of the image side, at least 3 (SimCLR's TensorFlow code). Small crops get
      few taps: 3 at 32 px, which cuts a sigma of 2 down to a much weaker blur.
    - `kernel_size=k`: a fixed size, as torchvision's `GaussianBlur(kernel_size=k)` (STL: 9,
      AugSelf: 9 or 23).
    - `truncate=t`: 2 * ceil(t * sigma_max) + 1 taps, so every sigma's kernel covers +-t sigma
      (scipy's rule; t = 3 or 4 is close to an untruncated Gaussian). PIL's
      `ImageFilter.GaussianBlur(radius=sigma)`, which GTSA, DINO and BYOL's PyTorch pipelines use,
      is not truncated; `truncate=3, padding="symmetric"` is the closest to it (PIL itself runs three
      box blurs on uint8, an approximation that stays a few uint8 levels from any Gaussian).

    Args:
        sigma: (min, max) standard deviation in pixels.
        kernel_size: odd kernel size; default: about 10% of the image side (SimCLR), at least 3.
        truncate: > 0: the kernel covers +-truncate * sigma_max (exclusive with kernel_size).
        padding: `"reflect"` (default, torchvision) or `"symmetric"` (PIL), see `blur`.

    Records `blur` (B, 1): sigma in pixels (0 means not blurred, as `RandomApply` records it).

    Example:
    >>> from keras_eqssl.augment import GaussianBlur
    >>> blur = GaussianBlur(sigma=(0.1, 2.0))
    >>> images = tf.random.stateless_uniform((4, 32, 32, 3), seed=(0, 1))
    >>> out, params = blur(images, seed=0)
    >>> tuple(out.shape), tuple(params["blur"].shape)
    ((4, 32, 32, 3), (4, 1))
    >>> bool(tf.reduce_all(blur.apply(images, blur.identity_params(4)) == images))  # sigma 0: unchanged
    True
    """

    def __init__(
        self,
        sigma=(0.1, 2.0),
        kernel_size: int | None = None,
        truncate: float | None = None,
        padding: str = "reflect",
        name: str = "blur",
    ):
        super().__init__(name)
        if truncate is not None and (kernel_size is not None or not float(truncate) > 0):
            raise ValueError(
                "GaussianBlur: truncate must be > 0 and cannot be combined with kernel_size; received "
                f"truncate={truncate}, kernel_size={kernel_size}."
            )
        if padding not in PADDINGS:
            raise ValueError(f"GaussianBlur: padding must be one of {PADDINGS}; received padding={padding!r}.")
        self.truncate = None if truncate is None else float(truncate)
        self.padding = padding
        self.sigma = check_range("GaussianBlur", "sigma", sigma, low=0.0)
        if kernel_size is not None and (int(kernel_size) < 1 or int(kernel_size) % 2 == 0):
            raise ValueError(
                f"GaussianBlur: kernel_size must be a positive odd int; received kernel_size={kernel_size}."
            )
        self.kernel_size = None if kernel_size is None else int(kernel_size)

    def param_specs(self):
        return [ParamSpec(self.name, (1,), CONTINUOUS, *self.sigma, doc="sigma in pixels; 0 = not blurred")]

    def sample(self, batch_size, seed, image_size=None):
        return {self.name: uniform([batch_size, 1], seed, 0, *self.sigma)}

    def kernel_size_for(self, images) -> int:
        if self.kernel_size is not None:
            return self.kernel_size
        if self.truncate is not None:
            return 2 * math.ceil(self.truncate * self.sigma[1]) + 1
        if images.shape[1] is None or images.shape[2] is None:
            raise ValueError(
                "GaussianBlur: the image size is not known statically, so the kernel size cannot be "
                f"derived; pass kernel_size=. Received images of shape {images.shape}."
            )
        size = max(3, int(0.1 * min(images.shape[1], images.shape[2])))
        return size + 1 if size % 2 == 0 else size

    def apply(self, images, params):
        return blur(images, params[self.name], self.kernel_size_for(images), self.padding)

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1])}

    def get_config(self):
        return {
            "sigma": list(self.sigma),
            "kernel_size": self.kernel_size,
            "truncate": self.truncate,
            "padding": self.padding,
            "name": self.name,
        }
