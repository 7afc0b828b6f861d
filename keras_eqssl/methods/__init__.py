"""Training methods: `PairModel` = backbone + an invariance loss + equivariance objectives."""

from keras_eqssl.methods.context import RELATIVE_SPECS, ModelContext
from keras_eqssl.methods.invariance import BYOL, INVARIANCES, BarlowTwins, Invariance, SimCLR, SimSiam, VICReg
from keras_eqssl.methods.objectives import (
    ESSL,
    OBJECTIVES,
    SIE,
    STL,
    CrossAttentionReconstruction,
    Objective,
    ParameterPrediction,
)
from keras_eqssl.methods.pair_model import PairModel

__all__ = [
    "BYOL",
    "INVARIANCES",
    "OBJECTIVES",
    "RELATIVE_SPECS",
    "BarlowTwins",
    "ESSL",
    "CrossAttentionReconstruction",
    "Invariance",
    "ModelContext",
    "Objective",
    "PairModel",
    "ParameterPrediction",
    "SIE",
    "STL",
    "SimCLR",
    "SimSiam",
    "VICReg",
]
