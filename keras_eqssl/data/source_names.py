"""The names a config may give `data.source` and `data.photos`: plain constants, importable without TensorFlow.

>>> "image_folder" in SOURCES, PHOTO_SPLITS
(True, ('all', 'train', 'test'))
"""

SOURCES = ("skimage_photos", "image_folder", "tfds", "fashion_mnist", "threedie")
PHOTO_SPLITS = ("all", "train", "test")  # skimage_photos' `photos` (see `data.photos.photo_names`)
