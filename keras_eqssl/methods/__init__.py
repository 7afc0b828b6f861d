"""Training methods on one base, `SSLModel`: `PairModel` = backbone + an invariance loss + equivariance objectives,
`TeacherStudentModel` = a student and its EMA teacher on multi-crops + registered loss parts."""

from keras_eqssl.methods.context import RELATIVE_SPECS, ModelContext
from keras_eqssl.methods.coupled_sgd import CoupledSGD
from keras_eqssl.methods.invariance import BYOL, INVARIANCES, BarlowTwins, Invariance, SimCLR, SimSiam, VICReg
from keras_eqssl.methods.objectives import (
    ESSL,
    OBJECTIVES,
    SIE,
    STL,
    CrossAttentionReconstruction,
    Objective,
    OnlineLinearProbe,
    ParameterPrediction,
)
from keras_eqssl.methods.pair_model import PairModel
from keras_eqssl.methods.scheduled_adamw import ScheduledAdamW
from keras_eqssl.methods.ssl_model import MODEL_KINDS, SSLModel
from keras_eqssl.methods.teacher_student import (
    TERMS,
    CorrespondenceTerm,
    CropTerm,
    DINOTerm,
    RotationTerm,
    TeacherStudentModel,
    TeacherStudentTerm,
)
from keras_eqssl.methods.torch_adam import TorchAdam

__all__ = [
    "BYOL",
    "INVARIANCES",
    "MODEL_KINDS",
    "OBJECTIVES",
    "RELATIVE_SPECS",
    "BarlowTwins",
    "CoupledSGD",
    "CorrespondenceTerm",
    "CropTerm",
    "DINOTerm",
    "ESSL",
    "CrossAttentionReconstruction",
    "Invariance",
    "ModelContext",
    "Objective",
    "OnlineLinearProbe",
    "PairModel",
    "RotationTerm",
    "ParameterPrediction",
    "SIE",
    "ScheduledAdamW",
    "SSLModel",
    "STL",
    "TERMS",
    "SimCLR",
    "SimSiam",
    "TeacherStudentModel",
    "TeacherStudentTerm",
    "TorchAdam",
    "VICReg",
]
