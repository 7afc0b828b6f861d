"""STL's aligned pairs: images 2i and 2i+1 share crop (0.2-1), colour jitter and grayscale in each
view; flip and blur (p=0.5) are drawn per image. AugMix joins the shared part.

    keras-eqssl-views --config=configs/views/stl.py --out=stl_views.png
    keras-eqssl-views --config=configs/views/stl.py --config.augment.stl.augmix=False
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.data.source = "skimage_photos"  # views of photos (configs/stl.py trains STL)
    config.augment.policy = "stl"
    config.augment.crop.scale = (0.2, 1.0)
    config.augment.stl.augmix = True
    return config
