"""Training methods on one base, `SSLModel`: `PairModel` = backbone + an invariance loss + equivariance objectives."""

from keras_eqssl.methods.context import RELATIVE_SPECS, ModelContext
from keras_eqssl.methods.coupled_sgd import CoupledSGD
from keras_eqssl.methods.gtsa import GTSAModel
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
from keras_eqssl.methods.scheduled_adamw import ScheduledAdamW
from keras_eqssl.methods.ssl_model import SSLModel
from keras_eqssl.methods.torch_adam import TorchAdam

__all__ = [
    "BYOL",
    "INVARIANCES",
    "OBJECTIVES",
    "RELATIVE_SPECS",
    "BarlowTwins",
    "CoupledSGD",
    "ESSL",
    "GTSAModel",
    "CrossAttentionReconstruction",
    "Invariance",
    "ModelContext",
    "Objective",
    "PairModel",
    "ParameterPrediction",
    "SIE",
    "ScheduledAdamW",
    "SSLModel",
    "STL",
    "SimCLR",
    "SimSiam",
    "TorchAdam",
    "VICReg",
]
