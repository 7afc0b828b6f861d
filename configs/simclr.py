"""SimCLR (Chen et al., ICML 2020), the baseline without the reconstruction branch.

SimCLR (Chen et al., ICML 2020): NT-Xent (temperature 0.1) on a 512-128 projector.
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/simclr.py
    keras-eqssl-train --config=configs/simclr.py --config.data.source=skimage_photos --config.workdir=runs/simclr_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/simclr"
    config.model.invariance = "simclr"
    config.model.projector = "512-128"
    config.model.temperature = 0.1
    config.model.split = (0, 0)  # the whole representation is invariant
    config.model.recon.enabled = False
    return config
