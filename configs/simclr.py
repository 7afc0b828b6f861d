"""SimCLR two-view augmentation on the scikit-image photos.

What it runs: crop (0.08-1), flip, colour jitter (0.4, 0.4, 0.4, 0.1; p=0.8, random order),
grayscale (p=0.2), blur (sigma 0.1-2, p=0.5); two views of 64 px. Training with this config
lands with the methods package; today it draws views and checks their parameters (seconds).

    keras-eqssl-train --config=configs/simclr.py
    keras-eqssl-views --config=configs/simclr.py --out=simclr_views.png
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.augment.policy = "simclr"
    return config
