"""Horizontal flip that records whether it flipped."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.base import register
from keras_eqssl.augment.bernoulli_op import BernoulliOp


@register
class Flip(BernoulliOp):
    """Mirrors images left-right with probability `p`.

    Records `flip` (B, 1): 1.0 where the image was mirrored.

    Example:
    >>> from keras_eqssl.augment import Flip
    >>> flip = Flip(p=0.5)
    >>> sorted(flip.sample(8, seed=0))
    ['flip']
    >>> row = tf.constant([[[[0.0] * 3, [0.5] * 3, [1.0] * 3]]])  # one 1 x 3 image
    >>> flip.apply(row, {"flip": tf.constant([[1.0]])})[0, 0, :, 0].numpy().tolist()
    [1.0, 0.5, 0.0]
    """

    applied_doc = "1 = mirrored left-right"

    def __init__(self, p: float = 0.5, name: str = "flip"):
        super().__init__(p, name)

    def transform(self, images) -> tf.Tensor:
        return tf.reverse(images, axis=[2])
