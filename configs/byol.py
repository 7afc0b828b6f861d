"""BYOL (Grill et al., NeurIPS 2020), the baseline without the reconstruction branch.

BYOL (Grill et al., NeurIPS 2020): predictor regresses an EMA target network (tau 0.99 -> 1, cosine).
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/byol.py
    keras-eqssl-train --config=configs/byol.py --config.data.source=skimage_photos --config.workdir=runs/byol_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/byol"
    config.model.invariance = "byol"
    config.augment.policy = "byol"  # the asymmetric BYOL pair when training on photos
    config.augment.jitter.saturation = 0.2
    config.model.projector = "512-128"
    config.model.predictor = "512-128"
    config.model.byol_momentum = 0.99
    config.model.split = (0, 0)  # the whole representation is invariant
    config.model.recon.enabled = False
    return config
