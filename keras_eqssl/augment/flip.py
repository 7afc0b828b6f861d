"""Horizontal flip that records whether it flipped."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.base import BINARY, Op, ParamSpec, apply_where, bernoulli, check_probability, register


@register
class Flip(Op):
    """Mirrors images left-right with probability `p`.

    Records `flip` (B, 1): 1.0 where the image was mirrored.
    """

    def __init__(self, p: float = 0.5, name: str = "flip"):
        super().__init__(name)
        self.p = check_probability("Flip", p)

    def param_specs(self):
        return [ParamSpec(self.name, (1,), BINARY, 0.0, 1.0, doc="1 = mirrored left-right")]

    def sample(self, batch_size, seed, image_size=None):
        return {self.name: bernoulli(batch_size, seed, 0, self.p)}

    def apply(self, images, params):
        # Only the mirrored images are reversed; the others pass through as is.
        return apply_where(params[self.name], images, lambda imgs, idx: tf.reverse(imgs, axis=[2]))

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1])}

    def get_config(self):
        return {"p": self.p, "name": self.name}
