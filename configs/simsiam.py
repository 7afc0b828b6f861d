"""SimSiam (Chen & He, CVPR 2021), the baseline without the reconstruction branch.

SimSiam (Chen & He, CVPR 2021): predictor + stop-gradient, negative cosine.
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/simsiam.py
    keras-eqssl-train --config=configs/simsiam.py --config.data.source=skimage_photos --config.workdir=runs/simsiam_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/simsiam"
    config.model.invariance = "simsiam"
    config.model.projector = "512-512-512"
    config.model.predictor = "128-512"
    config.model.split = (0, 0)  # the whole representation is invariant
    config.model.recon.enabled = False
    return config
