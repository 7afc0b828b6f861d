"""STL's aligned pairs (Yu et al., NeurIPS 2024): two different images share one transformation."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment import base
from keras_eqssl.augment.augmix import AugMix
from keras_eqssl.augment.blur import GaussianBlur
from keras_eqssl.augment.color import ColorJitter, Grayscale
from keras_eqssl.augment.compose import Compose, RandomApply
from keras_eqssl.augment.crop import RandomResizedCrop
from keras_eqssl.augment.flip import Flip
from keras_eqssl.augment.policies.base import Policy
from keras_eqssl.augment.policies.pairs import SIMCLR_JITTER, geometric_ops
from keras_eqssl.augment.seeds import fold


def check_pairs(x, name: str = "x", what: str = "STL pairs rows (2i, 2i+1) of the batch (the `stl` policy's)"):
    """`x` `(B, ...)` unchanged if B is even; else a ValueError (static B) or, for a dynamic B, an
    `InvalidArgumentError` from a `tf.debugging.assert_equal` that runs before `x` is used.

    Shared by the policy that makes aligned pairs and the STL objective that reads them."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank >= 1 and x.shape[0] is not None and x.shape[0] % 2:
        raise ValueError(f"{what}: the batch size must be even; received {name}.shape={tuple(x.shape)}.")
    check = tf.debugging.assert_equal(tf.shape(x)[0] % 2, 0, message=f"{what}: the batch size must be even")
    with tf.control_dependencies([check]):  # in graph mode, fail before any op sees the odd batch
        return tf.identity(x)


class AlignedPairsPolicy(Policy):
    """Images 2i and 2i+1 of a batch receive the *same* `aligned` parameters in each view;
    `per_image` parameters are drawn for every image on its own.

    STL's recipe: crop, colour jitter and grayscale are aligned (the transformations STL learns);
    flip and blur are per image (nuisances). With `augmix=True`, AugMix joins the aligned part.

    Views `v1`, `v2`: (B, size, size, 3); B must be even. Params per view: the aligned keys
    (rows 2i and 2i+1 equal) and the per-image keys.
    """

    def __init__(self, aligned: base.Op, per_image: base.Op, views=("v1", "v2"), name: str = "stl"):
        self.aligned, self.per_image = aligned, per_image
        self.views = tuple(views)
        self.name = name

    def view_names(self):
        return list(self.views)

    def param_specs(self):
        specs = self.aligned.param_specs() + self.per_image.param_specs()
        return {v: specs for v in self.views}

    def make_views(self, images, seeds):
        images = check_pairs(images, "images", "AlignedPairsPolicy pairs images (2i, 2i+1)")
        batch = tf.shape(images)[0]
        size = tf.shape(images)[1:3]
        out, params = {}, {}
        for v in self.views:
            shared = self.aligned.sample(batch // 2, fold(seeds[v], 0), image_size=size)
            shared = {k: tf.repeat(t, 2, axis=0) for k, t in shared.items()}
            own = self.per_image.sample(batch, fold(seeds[v], 1), image_size=self.aligned.output_size(size))
            params[v] = {**shared, **own}
            out[v] = self.per_image.apply(self.aligned.apply(images, params[v]), params[v])
        return out, params

    def get_config(self):
        return {
            "aligned": base.serialize(self.aligned),
            "per_image": base.serialize(self.per_image),
            "views": list(self.views),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(
            base.from_config(config["aligned"]), base.from_config(config["per_image"]), config["views"], config["name"]
        )


def stl(
    size=96,
    scale=(0.2, 1.0),
    ratio=(3 / 4, 4 / 3),
    jitter=None,
    jitter_p=0.8,
    grayscale_p=0.2,
    flip_p=0.5,
    blur_sigma=(0.1, 2.0),
    blur_p=0.5,
    augmix: bool = False,
    augmix_kwargs=None,
    rotation=0.0,
    translation=0.0,
) -> AlignedPairsPolicy:
    """STL's policy: aligned crop (+ rotation, translation when > 0) + jitter + grayscale (+ AugMix),
    per-image flip + blur."""
    # STL's code crops with torchvision's v2.RandomResizedCrop on float tensors: its resampling convention.
    crop = RandomResizedCrop(size, scale=scale, ratio=ratio, convention="torchvision")
    aligned = [crop, *geometric_ops(rotation, translation)]
    aligned += [
        RandomApply(ColorJitter(**(SIMCLR_JITTER if jitter is None else jitter)), p=jitter_p),
        Grayscale(p=grayscale_p),
    ]
    if augmix:
        # torchvision's v2.AugMix defaults (the STL code's library): all 13 ops, whole-pixel translations.
        aligned.append(AugMix(**{"all_ops": True, "whole_pixels": True, **(augmix_kwargs or {})}))
    per_image = [Flip(p=flip_p), RandomApply(GaussianBlur(sigma=blur_sigma, kernel_size=9), p=blur_p)]
    return AlignedPairsPolicy(Compose(aligned, name="aligned"), Compose(per_image, name="per_image"), name="stl")
