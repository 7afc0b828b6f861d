"""Policies: compose ops into the views each method trains on, returning `(views, params)`."""

from keras_eqssl.augment.policies.base import Policy, ViewsPolicy
from keras_eqssl.augment.policies.essl import RotatedCropPolicy
from keras_eqssl.augment.policies.factory import POLICIES, policy_from_config
from keras_eqssl.augment.policies.gtsa import MultiCropPolicy
from keras_eqssl.augment.policies.pairs import byol, rotated_pair, simclr, view_chain
from keras_eqssl.augment.policies.stl import AlignedPairsPolicy, stl

__all__ = [
    "POLICIES",
    "AlignedPairsPolicy",
    "MultiCropPolicy",
    "Policy",
    "RotatedCropPolicy",
    "ViewsPolicy",
    "byol",
    "policy_from_config",
    "rotated_pair",
    "simclr",
    "stl",
    "view_chain",
]
