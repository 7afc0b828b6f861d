"""Invariance losses: Layers that own their projector/predictor and return named loss terms."""

from keras_eqssl.methods.invariance.barlow_twins import BarlowTwins
from keras_eqssl.methods.invariance.base import TOTAL, Invariance
from keras_eqssl.methods.invariance.byol import BYOL
from keras_eqssl.methods.invariance.simclr import SimCLR
from keras_eqssl.methods.invariance.simsiam import SimSiam
from keras_eqssl.methods.invariance.vicreg import VICReg

INVARIANCES = {"simclr": SimCLR, "vicreg": VICReg, "barlow": BarlowTwins, "simsiam": SimSiam, "byol": BYOL}

__all__ = ["BYOL", "INVARIANCES", "TOTAL", "BarlowTwins", "Invariance", "SimCLR", "SimSiam", "VICReg"]
