"""E-SSL's extra view (Dangovski et al., ICLR 2022): a small crop shown in all four rotations."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment import base
from keras_eqssl.augment.crop import RandomResizedCrop
from keras_eqssl.augment.geometric import rot90
from keras_eqssl.augment.images import to_float_rgb
from keras_eqssl.augment.policies.base import Policy
from keras_eqssl.augment.policies.pairs import view_chain
from keras_eqssl.augment.seeds import make_seed


class RotatedCropPolicy(Policy):
    """Wraps a policy and adds views `rot0`..`rot3`: one small crop per image rotated by k * 90 degrees.

    The crop is drawn once per image (`rot*` views share it); each `rot{k}` view records the crop
    keys and `rot90` (B, 1) int32 = k, the 4-way classification target. The rotation is
    counter-clockwise, as E-SSL's `rotate_images` (`flip(3).transpose(2, 3)` on NCHW for k = 1).

    Args:
        base_policy: the policy whose views come first (e.g. `simclr(...)`).
        size: side of the small crop; scale: its area fraction (E-SSL ImageNet: 96 px, (0.05, 0.14);
            E-SSL CIFAR-10: 16 px, (0.2, 1.0)).
        ratio: the crop's aspect-ratio range.
        chain: None (the crop alone) or a dict of `view_chain` keyword arguments: the crop then gets
            that chain's flip, colour jitter, grayscale and blur, drawn once per image and shared by
            the four rotations, as E-SSL's CIFAR-10 code (`transform_rotation`: crop, flip 0.5,
            jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, no blur); the view records their
            parameters too.
        name: the policy's name.
    """

    def __init__(
        self,
        base_policy: Policy,
        size=96,
        scale=(0.05, 0.14),
        ratio=(3 / 4, 4 / 3),
        chain: dict | None = None,
        name: str = "essl",
    ):
        if int(size) < 2:
            raise ValueError(
                f"RotatedCropPolicy: size must be >= 2: the 4 quarter turns of a 1 px crop are the same image, so "
                f"the rotation cannot be predicted; received size={size}."
            )
        self.base_policy = base_policy
        self.chain = None if chain is None else dict(chain)
        if self.chain is None:
            self.crop = RandomResizedCrop(size, scale=scale, ratio=ratio)
        else:
            self.crop = view_chain(size, scale=scale, ratio=ratio, **self.chain)
        self.size, self.scale, self.ratio = int(size), tuple(scale), tuple(ratio)
        self.name = name

    def view_names(self):
        return self.base_policy.view_names() + [f"rot{k}" for k in range(4)]

    def param_specs(self):
        specs = self.base_policy.param_specs()
        rot = base.ParamSpec("rot90", (1,), base.CATEGORICAL, 0, 3, "int32", doc="quarter turns, counter-clockwise")
        specs.update({f"rot{k}": self.crop.param_specs() + [rot] for k in range(4)})
        return specs

    def __call__(self, images, seed=0, step=0, replica=0):
        views, params = self.base_policy(images, seed, step, replica)
        images = to_float_rgb(images, where="RotatedCropPolicy")
        crop_seed = make_seed(seed, step, replica, len(self.base_policy.view_names()))
        crop_params = self.crop.sample(tf.shape(images)[0], crop_seed, image_size=tf.shape(images)[1:3])
        small = self.crop.apply(images, crop_params)
        for k in range(4):
            k_tensor = tf.fill([tf.shape(images)[0], 1], k)
            views[f"rot{k}"] = rot90(small, k_tensor)
            params[f"rot{k}"] = {**crop_params, "rot90": k_tensor}
        return views, params

    def get_config(self):
        return {
            "size": self.size,
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "chain": None if self.chain is None else dict(self.chain),
            "name": self.name,
        }
