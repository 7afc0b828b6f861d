"""Gaussian blur with a per-image sigma (keras-cv and Keras draw one sigma per batch)."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.base import CONTINUOUS, Op, ParamSpec, check_range, register, uniform


def gaussian_kernels(sigma, size: int) -> tf.Tensor:
    """(B, size) normalised 1-D Gaussian kernels; sigma <= 0 gives the identity kernel."""
    x = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
    s = tf.maximum(tf.reshape(sigma, [-1, 1]), 1e-6)
    k = tf.exp(-(x[None] ** 2) / (2.0 * s**2))
    return k / tf.reduce_sum(k, axis=1, keepdims=True)


def blur(images, sigma, size: int) -> tf.Tensor:
    """Separable Gaussian blur with reflect padding, one sigma per image.

    Args:
        images: (B, H, W, C) float. sigma: (B,) or (B, 1). size: odd kernel size.
    """
    if images.shape[0] == 0:
        return images
    return tf.cond(tf.shape(images)[0] > 0, lambda: _blur(images, sigma, size), lambda: images)


def _blur(images, sigma, size: int) -> tf.Tensor:
    b, h, w, c = (tf.shape(images)[i] for i in range(4))
    kernels = gaussian_kernels(sigma, size)  # (B, K)
    # Fold the batch into channels so one depthwise conv runs every image with its own kernel.
    x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, h, w, b * c])
    k = tf.repeat(tf.transpose(kernels), repeats=c, axis=1)  # (K, B*C), channel-major per image
    pad = size // 2
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, tf.reshape(k, [size, 1, -1, 1]), [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, tf.reshape(k, [1, size, -1, 1]), [1, 1, 1, 1], "VALID")
    out = tf.transpose(tf.reshape(x, [h, w, b, c]), [2, 0, 1, 3])
    out.set_shape(images.shape)
    return tf.clip_by_value(out, 0.0, 1.0)


@register
class GaussianBlur(Op):
    """Blurs each image with its own sigma ~ U(sigma).

    Args:
        sigma: (min, max) standard deviation in pixels.
        kernel_size: odd kernel size; default: about 10% of the image side (SimCLR), at least 3.

    Records `blur` (B, 1): sigma in pixels (0 means not blurred, as `RandomApply` records it).
    """

    def __init__(self, sigma=(0.1, 2.0), kernel_size: int | None = None, name: str = "blur"):
        super().__init__(name)
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
        if images.shape[1] is None or images.shape[2] is None:
            raise ValueError(
                "GaussianBlur: the image size is not known statically, so the kernel size cannot be "
                f"derived; pass kernel_size=. Received images of shape {images.shape}."
            )
        size = max(3, int(0.1 * min(images.shape[1], images.shape[2])))
        return size + 1 if size % 2 == 0 else size

    def apply(self, images, params):
        return blur(images, params[self.name], self.kernel_size_for(images))

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1])}

    def get_config(self):
        return {"sigma": list(self.sigma), "kernel_size": self.kernel_size, "name": self.name}
