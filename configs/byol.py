"""BYOL (Grill et al., NeurIPS 2020): the baseline, without the reconstruction branch.

BYOL (Grill et al., NeurIPS 2020): a predictor regresses an EMA target network (tau 0.99 -> 1, cosine).
The whole representation is invariant (no split).
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
photos with the SimCLR policy instead: `--config.data.source=skimage_photos`. Settings shared by
all methods, and each method's projector, are in keras_eqssl/default_config.py.

    keras-eqssl-train --config=configs/byol.py
    keras-eqssl-train --config=configs/byol.py --config.data.source=skimage_photos --config.workdir=runs/byol_photos
"""

from keras_eqssl.default_config import method_config


def get_config():
    return method_config("byol")
