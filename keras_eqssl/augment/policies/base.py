"""A policy turns one batch of images into named views and the parameters that made them."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment import base
from keras_eqssl.augment.images import to_float_rgb
from keras_eqssl.augment.seeds import make_seed


class Policy:
    """Base class: `policy(images, seed, step, replica) -> (views, params)`.

    `views` is `{view_name: (B, h, w, 3) float32}` and `params` is `{view_name: {key: (B, ...)}}`,
    the batch format of the architecture doc. The seed of view i of a batch is
    `make_seed(seed, step, replica, i)`, so the draw is the same however the run was split or resumed.
    """

    name = "policy"

    def view_names(self) -> list[str]:
        raise NotImplementedError

    def param_specs(self) -> dict[str, list[base.ParamSpec]]:
        raise NotImplementedError

    def make_views(self, images, seeds: dict[str, tf.Tensor]):
        """images: (B, H, W, 3) float32; seeds: per-view seeds. Returns (views, params)."""
        raise NotImplementedError

    def __call__(self, images, seed=0, step=0, replica=0):
        images = to_float_rgb(images, where=f"{type(self).__name__}")
        seeds = {v: make_seed(seed, step, replica, i) for i, v in enumerate(self.view_names())}
        return self.make_views(images, seeds)

    def get_config(self) -> dict:
        raise NotImplementedError


class ViewsPolicy(Policy):
    """Each view is its own op chain applied independently to the whole batch (SimCLR, BYOL).

    Args:
        views: `{view_name: Op}`; each op is usually a `Compose`.

    Example:
    >>> from keras_eqssl.augment.policies import simclr
    >>> policy = simclr(size=32)
    >>> views, params = policy(tf.zeros((8, 64, 64, 3), tf.uint8), seed=0, step=3)
    >>> sorted(views), views["v1"].shape
    (['v1', 'v2'], TensorShape([8, 32, 32, 3]))
    """

    def __init__(self, views: dict, name: str = "views"):
        if not views:
            raise ValueError("ViewsPolicy needs at least one view.")
        self.views = dict(views)
        self.name = name

    def view_names(self):
        return list(self.views)

    def param_specs(self):
        return {v: op.param_specs() for v, op in self.views.items()}

    def make_views(self, images, seeds):
        size = tf.shape(images)[1:3]
        batch = tf.shape(images)[0]
        out, params = {}, {}
        for v, op in self.views.items():
            params[v] = op.sample(batch, seeds[v], image_size=size)
            out[v] = op.apply(images, params[v])
        return out, params

    def get_config(self):
        return {"views": {v: base.serialize(op) for v, op in self.views.items()}, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls({v: base.from_config(c) for v, c in config["views"].items()}, name=config["name"])
