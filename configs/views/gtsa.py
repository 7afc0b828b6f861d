"""GTSA multi-crop: 2 global crops (scale 0.3-1, 64 px) and 4 local crops (scale 0.1-0.3, 32 px),
each with strong colour jitter (0.8, 0.8, 0.8, 0.2; p=0.8), grayscale (0.2), blur (p=0.2) and a
random 90-degree rotation; records the overlap boxes between crops in each crop's rotated frame.

    keras-eqssl-views --config=configs/views/gtsa.py --out=gtsa_views.png
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.data.source = "skimage_photos"  # views of photos
    config.augment.policy = "gtsa"
    config.model.method = "teacher_student"  # the model these views train (a pair model trains on 'v1' and 'v2')
    config.model.recon.enabled = False
    config.augment.jitter.update(dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, p=0.8))
    config.augment.blur.p = 0.2
    config.augment.gtsa.num_local = 4
    return config
