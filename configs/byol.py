"""BYOL's asymmetric pair: view 1 always blurred and never solarized, view 2 blurred with p=0.1
and solarized with p=0.2; saturation jitter 0.2.

    keras-eqssl-views --config=configs/byol.py --out=byol_views.png
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.augment.policy = "byol"
    config.augment.jitter.saturation = 0.2
    config.augment.byol.blur_p = (1.0, 0.1)
    config.augment.byol.solarize_p = (0.0, 0.2)
    return config
