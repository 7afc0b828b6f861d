"""Builds a policy from the `augment` section of a config (see `keras_eqssl/default_config.py`)."""

from __future__ import annotations

from keras_eqssl.augment.policies.base import Policy
from keras_eqssl.augment.policies.essl import RotatedCropPolicy
from keras_eqssl.augment.policies.gtsa import MultiCropPolicy
from keras_eqssl.augment.policies.pairs import byol, simclr
from keras_eqssl.augment.policies.stl import stl

POLICIES = ("simclr", "byol", "stl", "gtsa", "essl")


def _jitter(cfg):
    j = cfg.jitter
    return dict(brightness=j.brightness, contrast=j.contrast, saturation=j.saturation, hue=j.hue)


def _chain_kwargs(cfg):
    return dict(
        scale=tuple(cfg.crop.scale),
        ratio=tuple(cfg.crop.ratio),
        flip_p=cfg.flip.p,
        jitter=_jitter(cfg),
        jitter_p=cfg.jitter.p,
        grayscale_p=cfg.grayscale.p,
        blur_sigma=tuple(cfg.blur.sigma),
        rotation=cfg.rotation.degrees,
        translation=cfg.translation.pixels,
    )


def policy_from_config(cfg) -> Policy:
    """`cfg` is the `augment` ConfigDict: `policy` names one of POLICIES, the rest its settings."""
    name = cfg.policy
    size = cfg.size
    if name == "simclr":
        return simclr(size, blur_p=cfg.blur.p, **_chain_kwargs(cfg))
    if name == "byol":
        kwargs = _chain_kwargs(cfg)
        return byol(size, blur_p=tuple(cfg.byol.blur_p), solarize_p=tuple(cfg.byol.solarize_p), **kwargs)
    if name == "stl":
        kw = _chain_kwargs(cfg)
        augmix = dict(
            severity=cfg.augmix.severity, width=cfg.augmix.width, depth=cfg.augmix.depth, alpha=cfg.augmix.alpha
        )
        return stl(size, blur_p=cfg.blur.p, augmix=cfg.stl.augmix, augmix_kwargs=augmix, **kw)
    if name == "gtsa":
        g = cfg.gtsa
        return MultiCropPolicy(
            global_size=size, local_size=g.local_size, num_local=g.num_local, global_scale=tuple(g.global_scale),
            local_scale=tuple(g.local_scale), ratio=tuple(cfg.crop.ratio), min_overlap_global=g.min_overlap_global,
            min_overlap_local=g.min_overlap_local, jitter=_jitter(cfg), jitter_p=cfg.jitter.p,
            grayscale_p=cfg.grayscale.p, blur_sigma=tuple(cfg.blur.sigma), blur_p=cfg.blur.p, rotate=g.rotate,
            pil_ops=g.get("pil_ops", False),
        )  # fmt: skip
    if name == "essl":
        chain = None
        if cfg.essl.get("chain", False):  # E-SSL CIFAR: flip, jitter, grayscale on the rotated crop; no blur
            chain = dict(
                flip_p=cfg.flip.p, jitter=_jitter(cfg), jitter_p=cfg.jitter.p, grayscale_p=cfg.grayscale.p, blur_p=0.0
            )
        return RotatedCropPolicy(
            simclr(size, blur_p=cfg.blur.p, **_chain_kwargs(cfg)), size=cfg.essl.size, scale=tuple(cfg.essl.scale),
            chain=chain,
        )  # fmt: skip
    raise ValueError(f"config.augment.policy={name!r} is not a known policy; choose one of {POLICIES}.")
