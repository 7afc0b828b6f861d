"""SimCLR (Chen et al., ICML 2020): the baseline, without the reconstruction branch.

SimCLR (Chen et al., ICML 2020): NT-Xent (temperature 0.1) on a 512-128 projector.
The whole representation is invariant (no split).
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
photos with the SimCLR policy instead: `--config.data.source=skimage_photos`. Settings shared by
all methods, and each method's projector, are in keras_eqssl/default_config.py.

    keras-eqssl-train --config=configs/simclr.py
    keras-eqssl-train --config=configs/simclr.py --config.data.source=skimage_photos --config.workdir=runs/simclr_photos
"""

from keras_eqssl.default_config import method_config


def get_config():
    return method_config("simclr")
