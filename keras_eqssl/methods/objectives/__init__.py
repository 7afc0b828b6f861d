"""Equivariance objectives that compose with any invariance loss in `PairModel`."""

from keras_eqssl.methods.objectives.base import TOTAL, Objective
from keras_eqssl.methods.objectives.cross_attention_reconstruction import CrossAttentionReconstruction
from keras_eqssl.methods.objectives.parameter_prediction import ParameterPrediction

OBJECTIVES = {"recon": CrossAttentionReconstruction, "params": ParameterPrediction}

__all__ = ["OBJECTIVES", "TOTAL", "CrossAttentionReconstruction", "Objective", "ParameterPrediction"]
