"""Augmentations that record the parameters they sampled, and policies that compose them into views."""

from keras_eqssl.augment.augmix import AUGMIX_ALL_OPS, AUGMIX_OPS, AugMix
from keras_eqssl.augment.base import ParamSpec, from_config, serialize
from keras_eqssl.augment.blur import GaussianBlur
from keras_eqssl.augment.color import ColorJitter, Grayscale, Solarize
from keras_eqssl.augment.compose import Compose, RandomApply, RandomChoice
from keras_eqssl.augment.crop import RandomResizedCrop
from keras_eqssl.augment.flip import Flip
from keras_eqssl.augment.geometric import Rotate90, Rotation, Translation
from keras_eqssl.augment.images import to_float_rgb
from keras_eqssl.augment.keras_layer import OpLayer
from keras_eqssl.augment.seeds import make_seed

__all__ = [
    "AUGMIX_ALL_OPS",
    "AUGMIX_OPS",
    "AugMix",
    "ColorJitter",
    "Compose",
    "Flip",
    "GaussianBlur",
    "Grayscale",
    "OpLayer",
    "ParamSpec",
    "RandomApply",
    "RandomChoice",
    "RandomResizedCrop",
    "Rotate90",
    "Rotation",
    "Solarize",
    "Translation",
    "from_config",
    "make_seed",
    "serialize",
    "to_float_rgb",
]
