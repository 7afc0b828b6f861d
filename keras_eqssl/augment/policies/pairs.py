"""Two-view policies of the invariance baselines: SimCLR and BYOL (asymmetric)."""

from __future__ import annotations

from keras_eqssl.augment.blur import GaussianBlur
from keras_eqssl.augment.color import ColorJitter, Grayscale, Solarize
from keras_eqssl.augment.compose import Compose, RandomApply
from keras_eqssl.augment.crop import RandomResizedCrop
from keras_eqssl.augment.flip import Flip
from keras_eqssl.augment.geometric import Rotation, Translation
from keras_eqssl.augment.policies.base import ViewsPolicy

SIMCLR_JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
BYOL_JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)


def geometric_ops(rotation: float = 0.0, translation: float = 0.0) -> list:
    """`[Rotation(rotation)]` and `[Translation(translation)]` for the values > 0 (degrees, pixels)."""
    ops = []
    if rotation > 0:
        ops.append(Rotation(rotation))
    if translation > 0:
        ops.append(Translation(translation))
    return ops


def view_chain(
    size,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    flip_p=0.5,
    jitter=None,
    jitter_p=0.8,
    grayscale_p=0.2,
    blur_sigma=(0.1, 2.0),
    blur_p=0.5,
    solarize_p=None,
    blur_kernel_size=None,
    rotation=0.0,
    translation=0.0,
) -> Compose:
    """The standard SSL view: crop, flip, jitter (p), grayscale (p), blur (p), and solarize (p) when given.

    `rotation` (degrees) and `translation` (pixels) > 0 add a rotation ~ U(-rotation, rotation) and
    a shift ~ U(-translation, translation) after the crop: the combined augmentations of the
    flagship paper's ImageNet protocol (rotation ±45°, translation ±10 px at 224 px).
    """
    jitter = SIMCLR_JITTER if jitter is None else jitter
    ops = [RandomResizedCrop(size, scale=scale, ratio=ratio), *geometric_ops(rotation, translation)]
    ops += [
        Flip(p=flip_p),
        RandomApply(ColorJitter(**jitter), p=jitter_p),
        Grayscale(p=grayscale_p),
        RandomApply(GaussianBlur(sigma=blur_sigma, kernel_size=blur_kernel_size), p=blur_p),
    ]
    if solarize_p is not None:
        ops.append(Solarize(p=solarize_p))
    return Compose(ops, name="view")


def simclr(size=224, **chain_kwargs) -> ViewsPolicy:
    """SimCLR (Chen et al. 2020): two views from the same chain, blur p=0.5.

    Views `v1`, `v2`: (B, size, size, 3). Params per view: crop, crop_scale, crop_ratio, flip,
    color_applied, color, color_order, grayscale, blur_applied, blur.
    """
    return ViewsPolicy({"v1": view_chain(size, **chain_kwargs), "v2": view_chain(size, **chain_kwargs)}, name="simclr")


def rotated_pair(rotation: float = 45.0, translation: float = 0.0) -> ViewsPolicy:
    """Two views of already different images (e.g. two renders of one object) that each get only an
    in-plane rotation ~ U(-rotation, rotation) degrees (and a shift ~ U(-translation, translation)
    pixels when > 0), drawn per view. No crop or colour change: the images keep their size.

    Views `v1`, `v2`: (B, H, W, 3), the input's size. Params per view: rotation (and translation).

    >>> import tensorflow as tf
    >>> views, params = rotated_pair(30.0)(tf.zeros((4, 16, 16, 3), tf.uint8), seed=1)
    >>> views["v1"].shape, sorted(params["v2"])
    (TensorShape([4, 16, 16, 3]), ['rotation'])
    """
    ops = geometric_ops(rotation, translation)
    if not ops:
        raise ValueError(f"rotated_pair: rotation or translation must be > 0; received {rotation}, {translation}.")
    return ViewsPolicy(
        {v: Compose(geometric_ops(rotation, translation), name="view") for v in ("v1", "v2")}, name="rotated_pair"
    )


def byol(size=224, blur_p=(1.0, 0.1), solarize_p=(0.0, 0.2), jitter=None, **chain_kwargs) -> ViewsPolicy:
    """BYOL (Grill et al. 2020): the two views differ in blur and solarize probability.

    Views `v1`, `v2`; both record `solarize` (always 0 in `v1` with the default solarize_p).
    """
    jitter = BYOL_JITTER if jitter is None else jitter
    views = {
        v: view_chain(size, jitter=jitter, blur_p=blur_p[i], solarize_p=solarize_p[i], **chain_kwargs)
        for i, v in enumerate(("v1", "v2"))
    }
    return ViewsPolicy(views, name="byol")
