"""Image sources (as tf.data), the 3DIEBench format and its renderer, and the views pipeline.

Names are imported lazily, so `keras_eqssl.data.render` runs without loading TensorFlow.
"""

from keras_eqssl.data.source_names import PHOTO_SPLITS as PHOTO_SPLITS  # re-exported
from keras_eqssl.data.source_names import SOURCES
from keras_eqssl.lazy_exports import lazy_getattr as _lazy_getattr

_EXPORTS = {
    "keras_eqssl.data.photos": ("PHOTOS", "HELD_OUT_PHOTOS", "load_photos", "photo_names", "skimage_photos"),
    "keras_eqssl.data.pipeline": ("view_batches",),
    "keras_eqssl.data.train_batches": ("train_batches", "threedie_root"),
    "keras_eqssl.data.threedie": (
        "threedie_pairs",
        "pair_batches",
        "normalize_3diebench",
        "THREEDIE_MEAN",
        "THREEDIE_STD",
    ),
    "keras_eqssl.data.threedie_index": ("list_objects", "ThreeDIEObjects"),
    "keras_eqssl.data.threedie_tfds": ("ThreeDIEBench", "tfds_pairs"),
    "keras_eqssl.data.tfds_source": ("tfds_images",),
    "keras_eqssl.data.image_folder": ("image_folder", "image_folder_layout", "list_image_folder"),
    "keras_eqssl.data.fashion_mnist": ("fashion_mnist", "fashion_mnist_available"),
    "keras_eqssl.data.image_files": ("BadFileError",),
    "keras_eqssl.data.quaternions": ("relative_rotation", "euler_xyz_to_quaternion"),
    "keras_eqssl.data.rotations": ("relative_quaternion",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "PHOTO_SPLITS", "SOURCES", "source_from_config"])


__getattr__ = _lazy_getattr(__name__, _WHERE, globals())


def source_from_config(config, workers=None):
    """The `tf.data.Dataset` of `{"image", "label"}` named by `config.data.source`.

    Sources: `skimage_photos` (bundled photos), `image_folder` (`config.data.root` with one
    subfolder per class, or images directly in it and no subfolder: unlabelled, no "label"),
    `tfds` (`config.data.tfds_name` already prepared in `config.data.data_dir`; nothing is downloaded;
    only the classes named in `config.data.tfds_classes`, if any),
    `fashion_mnist` (Debian's dataset-fashion-mnist package). Images have side `config.data.image_size`.

    `workers` (a multi-worker run's `tf.distribute.InputContext`) makes the file-based sources
    (`image_folder`, `tfds`) read only this worker's shard (`keras_eqssl.data.sharding`). The
    bundled photos (16 photos held in memory) and Fashion-MNIST (streamed from its idx files)
    are not sharded.
    """
    d = config.data
    if d.source == "skimage_photos":
        from keras_eqssl.data.photos import skimage_photos

        return skimage_photos(image_size=d.image_size, num_images=d.num_images, seed=config.seed, photos=d.photos)
    if d.source == "image_folder":
        from keras_eqssl.data.image_folder import image_folder

        return image_folder(
            d.root,
            image_size=d.image_size,
            seed=config.seed,
            skip_bad=d.skip_bad,
            check_decode=d.check_decode,
            decode_check_limit=d.decode_check_limit,
            workers=workers,
        )
    if d.source == "tfds":
        from keras_eqssl.data.tfds_source import class_names, tfds_images

        classes = class_names(d.get("tfds_classes", ""))
        return tfds_images(
            d.tfds_name,
            split=d.split,
            data_dir=d.data_dir or None,
            image_size=d.image_size,
            classes=classes,
            workers=workers,
        )
    if d.source == "fashion_mnist":
        from keras_eqssl.data.fashion_mnist import fashion_mnist

        return fashion_mnist(split=d.split, image_size=d.image_size)
    if d.source == "threedie":
        raise ValueError(
            "config.data.source='threedie' yields view pairs, not single images; use "
            "keras_eqssl.data.train_batches(config) (or threedie_pairs) instead of source_from_config."
        )
    raise ValueError(f"config.data.source={d.source!r} is not a known source; choose one of {SOURCES}.")
