"""BYOL (Grill et al., NeurIPS 2020) + cross-attention reconstruction.

BYOL (Grill et al., NeurIPS 2020): predictor regresses an EMA target network (tau 0.99 -> 1, cosine).
Plus the cross-attention reconstruction branch (Wang, Krajsek & Scharr, arXiv 2412.03314): the
equivariant half of the tokens of view 2 queries those of view 1, and a small decoder rebuilds view 2.
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/byol_recon.py
    keras-eqssl-train --config=configs/byol_recon.py --config.data.source=skimage_photos --config.workdir=runs/byol_recon_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/byol_recon"
    config.model.invariance = "byol"
    config.augment.policy = "byol"  # the asymmetric BYOL pair when training on photos
    config.augment.jitter.saturation = 0.2
    config.model.projector = "512-128"
    config.model.predictor = "512-128"
    config.model.byol_momentum = 0.99
    config.model.split = (64, 64)  # 128 channels: 64 invariant (SSL loss), 64 equivariant (reconstruction)
    config.model.recon.enabled = True
    config.model.recon.weight = 1.0
    return config
