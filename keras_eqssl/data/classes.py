"""How many classes the labels of a config's data source have: what a classifier trained on them needs."""

from __future__ import annotations

import numpy as np


def num_classes(config) -> int:
    """The number of classes K of the labels `config.data.source` yields (labels lie in [0, K)).

    Read from what the source knows, without decoding an image: the photos of `data.photos`
    (`skimage_photos`: one class per photo), the class subfolders of `data.root`
    (`image_folder`), the dataset's label feature (`tfds`: the classes of `data.tfds_classes` if any; 0
    when it is not a class label),
    Fashion-MNIST's 10 classes, and the labels of a 3DIEBench root's train and val split files
    (`threedie`; the mini-3DIEBench is rendered first if it is not in the cache yet).

    Example:
    >>> from keras_eqssl.default_config import get_config
    >>> config = get_config()
    >>> config.data.source, config.data.photos = "skimage_photos", "test"
    >>> num_classes(config)
    4
    """
    d = config.data
    if d.source == "skimage_photos":
        from keras_eqssl.data.photos import photo_names

        return len(photo_names(d.photos))
    if d.source == "image_folder":
        from keras_eqssl.data.image_folder import list_image_folder

        return len(list_image_folder(d.root, check_files=False, skip_bad=d.skip_bad).class_names)
    if d.source == "tfds":
        import tensorflow_datasets as tfds

        from keras_eqssl.data.tfds_source import class_names, image_label_keys

        kept = class_names(d.get("tfds_classes", ""))
        if kept:
            return len(set(kept))
        builder = tfds.builder(d.tfds_name, data_dir=d.data_dir or None)
        features, key = builder.info.features, image_label_keys(builder)[1]
        return int(getattr(features[key], "num_classes", 0) or 0) if key in features else 0
    if d.source == "fashion_mnist":
        from keras_eqssl.data.fashion_mnist import FASHION_MNIST_CLASSES

        return len(FASHION_MNIST_CLASSES)
    if d.source == "threedie":
        from keras_eqssl.data.threedie_index import read_split
        from keras_eqssl.data.train_batches import threedie_root

        root = threedie_root(config, progress=False)
        return int(max(np.max(read_split(root, split)[1]) for split in ("train", "val"))) + 1
    from keras_eqssl.data import SOURCES

    raise ValueError(f"config.data.source={d.source!r} is not a known source; choose one of {SOURCES}.")
