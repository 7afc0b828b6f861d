"""E-SSL: the SimCLR pair plus one small crop (scale 0.05-0.14, 32 px) in all four rotations,
the input of E-SSL's 4-way rotation classifier.

    keras-eqssl-views --config=configs/views/essl.py --out=essl_views.png
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.data.source = "skimage_photos"  # views of photos (configs/essl.py trains E-SSL)
    config.augment.policy = "essl"
    return config
