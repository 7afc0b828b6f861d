"""The default config, and the schema every config file is checked against.

Every key a config may have is here, with its default; a config file starts from `get_config()`
and changes what it needs. `keras-eqssl-train` with no `--config` runs this one:

    keras-eqssl-train                                # embedded default
    keras-eqssl-train --config=configs/byol.py --config.augment.size=96
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.workdir = "runs/default"

    c.data = ml_collections.ConfigDict()
    c.data.source = "skimage_photos"  # skimage_photos | image_folder | tfds | fashion_mnist
    c.data.root = ""  # image_folder: one subfolder per class
    c.data.tfds_name = ""  # tfds: a prepared image-classification dataset, e.g. "cifar10"
    c.data.data_dir = ""  # tfds: its data_dir ("" = tfds default)
    c.data.split = "train"
    c.data.image_size = 128  # side of the source images handed to the policy
    c.data.num_images = 2048  # images per epoch drawn from the source
    c.data.batch_size = 64

    a = c.augment = ml_collections.ConfigDict()
    a.policy = "simclr"  # simclr | byol | stl | gtsa | essl
    a.size = 64  # side of the (global) views
    a.crop = ml_collections.ConfigDict(dict(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)))
    a.flip = ml_collections.ConfigDict(dict(p=0.5))
    a.jitter = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8))
    a.grayscale = ml_collections.ConfigDict(dict(p=0.2))
    a.blur = ml_collections.ConfigDict(dict(sigma=(0.1, 2.0), p=0.5))
    a.byol = ml_collections.ConfigDict(dict(blur_p=(1.0, 0.1), solarize_p=(0.0, 0.2)))
    a.stl = ml_collections.ConfigDict(dict(augmix=False))
    a.augmix = ml_collections.ConfigDict(dict(severity=3, width=3, depth=-1, alpha=1.0))
    a.gtsa = ml_collections.ConfigDict(
        dict(
            local_size=32,
            num_local=4,
            global_scale=(0.3, 1.0),
            local_scale=(0.1, 0.3),
            min_overlap_global=0.02,
            min_overlap_local=0.01,
        )
    )
    a.essl = ml_collections.ConfigDict(dict(size=32, scale=(0.05, 0.14)))

    c.train = ml_collections.ConfigDict()
    c.train.steps = 40  # batches the main job draws (training itself lands with the methods)
    c.train.progress = True
    return c
