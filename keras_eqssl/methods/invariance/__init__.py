"""Invariance losses: Layers that own their projector/predictor, return named loss terms and register in `INVARIANCES`."""

from keras_eqssl.methods.invariance.barlow_twins import BarlowTwins
from keras_eqssl.methods.invariance.base import INVARIANCES, TOTAL, Invariance
from keras_eqssl.methods.invariance.byol import BYOL
from keras_eqssl.methods.invariance.simclr import SimCLR
from keras_eqssl.methods.invariance.simsiam import SimSiam
from keras_eqssl.methods.invariance.vicreg import VICReg

__all__ = ["BYOL", "INVARIANCES", "TOTAL", "BarlowTwins", "Invariance", "SimCLR", "SimSiam", "VICReg"]
