"""Image sources (as tf.data), the 3DIEBench format and its renderer, and the views pipeline.

Names are imported lazily, so `keras_eqssl.data.render` runs without loading TensorFlow.
"""

import importlib as _importlib

SOURCES = ("skimage_photos",)

_EXPORTS = {
    "keras_eqssl.data.photos": ("PHOTOS", "load_photos", "skimage_photos"),
    "keras_eqssl.data.pipeline": ("view_batches",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "SOURCES", "source_from_config"])


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'keras_eqssl.data' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def source_from_config(config):
    """The `tf.data.Dataset` named by `config.data.source` (images of side `config.data.image_size`)."""
    d = config.data
    if d.source == "skimage_photos":
        from keras_eqssl.data.photos import skimage_photos

        return skimage_photos(image_size=d.image_size, num_images=d.num_images, seed=config.seed)
    raise ValueError(f"config.data.source={d.source!r} is not a known source; choose one of {SOURCES}.")
