"""VICReg (Bardes et al., ICLR 2022), the baseline without the reconstruction branch.

VICReg (Bardes et al., ICLR 2022): variance-invariance-covariance on a 512-512-512 projector (25/25/1).
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/vicreg.py
    keras-eqssl-train --config=configs/vicreg.py --config.data.source=skimage_photos --config.workdir=runs/vicreg_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/vicreg"
    config.model.invariance = "vicreg"
    config.model.projector = "512-512-512"
    config.model.split = (0, 0)  # the whole representation is invariant
    config.model.recon.enabled = False
    return config
