"""The base of ops applied to each image or not, by a coin flip that they record."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.base import BINARY, Op, ParamSpec, apply_where, bernoulli, check_probability


class BernoulliOp(Op):
    """An op applied to each image with probability `p`; records `<name>` (B, 1): 1.0 where applied.

    Subclasses set `applied_doc` (what the recorded 1 means) and implement `transform`, which
    runs on the chosen images only (the others pass through exactly as they are).

    Example:
    >>> class Invert(BernoulliOp):
    ...     applied_doc = "1 = inverted"
    ...     def transform(self, images):
    ...         return 1.0 - images
    >>> invert = Invert(p=1.0, name="invert")
    >>> images, params = invert(tf.zeros((2, 4, 4, 3)), seed=0)
    >>> params["invert"].numpy().ravel().tolist(), float(tf.reduce_min(images))
    ([1.0, 1.0], 1.0)
    """

    applied_doc = "1 = applied"

    def __init__(self, p: float, name: str):
        super().__init__(name)
        self.p = check_probability(type(self).__name__, p)

    def transform(self, images) -> tf.Tensor:
        """The op on the images it is applied to: `(b, H, W, 3)` -> `(b, H, W, 3)`."""
        raise NotImplementedError

    def param_specs(self):
        return [ParamSpec(self.name, (1,), BINARY, 0.0, 1.0, doc=self.applied_doc)]

    def sample(self, batch_size, seed, image_size=None):
        return {self.name: bernoulli(batch_size, seed, 0, self.p)}

    def apply(self, images, params):
        # Only the chosen images are computed (p = 0.2 for SimCLR's grayscale); the rest pass through as is.
        return apply_where(params[self.name], images, lambda imgs, idx: self.transform(imgs))

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1])}

    def get_config(self):
        return {"p": self.p, "name": self.name}
