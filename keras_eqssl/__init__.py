"""keras_eqssl: self-supervised learning in Keras 3 that keeps equivariant features.

Public API: the names in `__all__`. Everything else is importable but private by convention.
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up INFO lines; set it yourself to see them

from keras_eqssl import augment, data  # noqa: E402
from keras_eqssl.augment import (  # noqa: E402
    AugMix,
    ColorJitter,
    Compose,
    Flip,
    GaussianBlur,
    Grayscale,
    ParamSpec,
    RandomApply,
    RandomChoice,
    RandomResizedCrop,
    Rotate90,
    Rotation,
    Solarize,
    Translation,
    make_seed,
)
from keras_eqssl.augment.policies import (  # noqa: E402
    AlignedPairsPolicy,
    MultiCropPolicy,
    Policy,
    RotatedCropPolicy,
    ViewsPolicy,
    byol,
    policy_from_config,
    simclr,
    stl,
)
from keras_eqssl.config_validation import ConfigError, validate  # noqa: E402
from keras_eqssl.data import skimage_photos, view_batches  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AlignedPairsPolicy",
    "AugMix",
    "ColorJitter",
    "Compose",
    "ConfigError",
    "Flip",
    "GaussianBlur",
    "Grayscale",
    "MultiCropPolicy",
    "ParamSpec",
    "Policy",
    "RandomApply",
    "RandomChoice",
    "RandomResizedCrop",
    "Rotate90",
    "RotatedCropPolicy",
    "Rotation",
    "Solarize",
    "Translation",
    "ViewsPolicy",
    "augment",
    "byol",
    "data",
    "make_seed",
    "policy_from_config",
    "simclr",
    "skimage_photos",
    "stl",
    "validate",
    "view_batches",
]
