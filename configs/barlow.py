"""Barlow Twins (Zbontar et al., ICML 2021), the baseline without the reconstruction branch.

Barlow Twins (Zbontar et al., ICML 2021): cross-correlation to identity, lambda 5e-3.
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/barlow.py
    keras-eqssl-train --config=configs/barlow.py --config.data.source=skimage_photos --config.workdir=runs/barlow_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/barlow"
    config.model.invariance = "barlow"
    config.model.projector = "512-512-512"
    config.model.barlow_lambda = 5e-3
    config.model.split = (0, 0)  # the whole representation is invariant
    config.model.recon.enabled = False
    return config
