"""Image sources (as tf.data) and the pipeline that turns them into views."""

from keras_eqssl.data.photos import PHOTOS, load_photos, skimage_photos
from keras_eqssl.data.pipeline import view_batches

SOURCES = ("skimage_photos",)


def source_from_config(config) -> "tf.data.Dataset":  # noqa: F821
    """The dataset named by `config.data.source` (images of side `config.data.image_size`)."""
    d = config.data
    if d.source == "skimage_photos":
        return skimage_photos(image_size=d.image_size, num_images=d.num_images, seed=config.seed)
    raise ValueError(f"config.data.source={d.source!r} is not a known source; choose one of {SOURCES}.")


__all__ = ["PHOTOS", "SOURCES", "load_photos", "skimage_photos", "source_from_config", "view_batches"]
