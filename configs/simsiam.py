"""SimSiam (Chen & He, CVPR 2021): the baseline, without the reconstruction branch.

SimSiam (Chen & He, CVPR 2021): predictor + stop-gradient, negative cosine.
The whole representation is invariant (no split).
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
photos with the SimCLR policy instead: `--config.data.source=skimage_photos`. Settings shared by
all methods, and each method's projector, are in keras_eqssl/default_config.py.

    keras-eqssl-train --config=configs/simsiam.py
    keras-eqssl-train --config=configs/simsiam.py --config.data.source=skimage_photos --config.workdir=runs/simsiam_photos
"""

from keras_eqssl.default_config import method_config


def get_config():
    return method_config("simsiam")
