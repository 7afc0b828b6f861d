"""Objectives that compose with any invariance loss in `PairModel`; each registers itself in `OBJECTIVES`."""

from keras_eqssl.methods.objectives.base import OBJECTIVES, TOTAL, Objective
from keras_eqssl.methods.objectives.cross_attention_reconstruction import CrossAttentionReconstruction
from keras_eqssl.methods.objectives.essl import ESSL
from keras_eqssl.methods.objectives.parameter_prediction import ParameterPrediction
from keras_eqssl.methods.objectives.sie import SIE
from keras_eqssl.methods.objectives.stl import STL

# isort: split
# Registered last, so its classifier is built after every other objective's heads: turning it on
# leaves their initial weights (drawn in registry order) as they are.
from keras_eqssl.methods.objectives.online_probe import OnlineLinearProbe

__all__ = [
    "OBJECTIVES",
    "TOTAL",
    "CrossAttentionReconstruction",
    "Objective",
    "ESSL",
    "OnlineLinearProbe",
    "ParameterPrediction",
    "SIE",
    "STL",
]
