"""3DIEBench as a tfds dataset: a builder from a raw root, and the same view pairs read back from it.

`ThreeDIEBench` stores one example per object: all its views' JPEG bytes (as on disk, not
re-encoded), all its latents, its label, its object id and its position in the split file.
Build it from a raw root (ours or the real one) given as the manual dir:

    tfds build keras_eqssl/data/threedie_tfds.py --manual_dir=/data/3DIEBench --data_dir=/data/tfds

or in Python:

    builder = ThreeDIEBench(data_dir="/data/tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir="/data/3DIEBench"))

`tfds_pairs(data_dir, split, seed=...)` then yields the elements of `threedie.threedie_pairs`,
identical tensors for the same object, seed and epoch: the pair is drawn from the stored split
position and only the two chosen JPEGs are decoded (with the same decoder as the raw reader).
The order differs: tfds reads its records in its own order (shuffled by file and buffer when
`shuffle=True`), the raw reader permutes split positions.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from keras_eqssl.data.image_files import decode_jpeg_checked
from keras_eqssl.data.threedie import epoch_positions, pair_batches, pair_element, sample_pair
from keras_eqssl.data.threedie_index import LATENT_SIZE, SPLITS, list_objects, read_split

_SPLIT_FILES = ("train_images.npy", "train_labels.npy", "val_images.npy", "val_labels.npy")


class ThreeDIEBench(tfds.core.GeneratorBasedBuilder):
    """3DIEBench (Garrido, Najman, LeCun, ICML 2023): 3D objects rendered under known rotations and lights.

    One example per object: `{"object_id": str "synset/object", "index": int64 (position in the
    split file), "label": int64, "images": (V,) JPEG images (H, W, 3), "latents": (V, 7) float32}`.
    Splits "train" and "val" from the root's split files.
    """

    name = "threediebench"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "One example per object: all views, latents, label."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Give the raw 3DIEBench root as the manual dir (`--manual_dir=ROOT` or
    `DownloadConfig(manual_dir=ROOT)`): ROOT holds train_images.npy, train_labels.npy,
    val_images.npy, val_labels.npy and SYNSET/OBJECT/image_k.jpg + latent_k.npy. Either the real
    set (https://dl.fbaipublicfiles.com/SIE/3DIEBench.tar.gz, 17 GB, CC-BY-NC; extract it and copy
    the split files from facebookresearch/SIE data/ into the root) or one written by
    `keras-eqssl-render`. Nothing is downloaded.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="3DIEBench view sets: every render of an object with its 7 latents.",
            features=tfds.features.FeaturesDict(
                {
                    "object_id": tfds.features.Text(),
                    "index": tfds.features.Scalar(dtype=np.int64),
                    "label": tfds.features.Scalar(dtype=np.int64),
                    "images": tfds.features.Sequence(
                        tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")
                    ),
                    "latents": tfds.features.Tensor(shape=(None, LATENT_SIZE), dtype=np.float32),
                }
            ),
            homepage="https://github.com/facebookresearch/SIE",
            metadata=tfds.core.MetadataDict(),
        )

    # tfds 4.9 finds a packaged builder's file through `importlib_resources`, which it declares only
    # for Python < 3.9; naming the file here keeps `download_and_prepare` working without it.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = os.fspath(dl_manager.manual_dir)
        splits = [s for s in SPLITS if os.path.isfile(os.path.join(root, f"{s}_images.npy"))]
        if not splits:
            read_split(root, "train")  # raises the error that names the missing file
        listings = {s: list_objects(root, s, check_files=True) for s in splits}
        sizes = {lst.image_size for lst in listings.values()}
        if len(sizes) > 1:
            raise ValueError(f"3DIEBench root {root}: splits have different image sizes {sorted(sizes)}.")
        self.info.metadata["image_size"] = list(sizes.pop())
        return {s: self._generate_examples(listings[s]) for s in splits}

    def _generate_examples(self, objects):
        for object_id, label, count, index in zip(
            objects.object_ids, objects.labels, objects.num_views, objects.indices
        ):
            directory = os.path.join(objects.root, object_id)
            latents = np.stack([np.load(os.path.join(directory, f"latent_{k}.npy")) for k in range(count)])
            yield (
                object_id,
                {
                    "object_id": object_id,
                    "index": int(index),
                    "label": int(label),
                    "images": [os.path.join(directory, f"image_{k}.jpg") for k in range(count)],
                    "latents": latents.astype(np.float32),
                },
            )


def prepared_builder(data_dir: str | os.PathLike) -> ThreeDIEBench:
    """The `ThreeDIEBench` builder of `data_dir`, checked to be built (never builds or downloads)."""
    builder = ThreeDIEBench(data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"tfds dataset 'threediebench' is not prepared in data_dir={os.fspath(data_dir)!r} "
            f"(looked in {builder.data_dir}); build it first: ThreeDIEBench(data_dir=...).download_and_prepare("
            "download_config=tfds.download.DownloadConfig(manual_dir=RAW_ROOT))."
        )
    return builder


def tfds_pairs(
    data_dir: str | os.PathLike,
    split: str = "train",
    *,
    seed: int = 0,
    first_epoch: int = 0,
    num_epochs: int | None = 1,
    shuffle: bool = True,
    shuffle_buffer: int = 256,
    image_size: int | None = None,
    batch_size: int | None = None,
    augment=None,
    with_index: bool = False,
) -> tf.data.Dataset:
    """View pairs from a built `ThreeDIEBench`: the elements of `threedie.threedie_pairs`.

    Args:
        data_dir: the tfds data dir the builder was prepared in.
        split: "train" or "val".
        seed, first_epoch, num_epochs, image_size, batch_size, augment, with_index: as in
            `threedie_pairs` (the pair of an object is the same for the same seed and epoch).
        shuffle: shuffle files and a `shuffle_buffer` of objects each epoch (seeded).
        shuffle_buffer: objects in the shuffle buffer (each holds all V JPEGs of an object).

    Returns:
        tf.data.Dataset of pair elements (batched when `batch_size` is given).
    """
    builder = prepared_builder(data_dir)
    if split not in builder.info.splits:
        raise ValueError(
            f"tfds 'threediebench' in {data_dir} has no split {split!r}; it has {list(builder.info.splits)}."
        )
    if augment is not None and batch_size is None:
        raise ValueError("tfds_pairs: augment needs batch_size (the policy runs on batches).")
    size = tuple(builder.info.metadata["image_size"])
    num_objects = builder.info.splits[split].num_examples
    read_config = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=True)
    records = builder.as_dataset(
        split=split,
        decoders={"images": tfds.decode.SkipDecoding()},
        shuffle_files=shuffle,
        read_config=read_config,
    )
    if shuffle:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    records = records.repeat(num_epochs) if num_epochs is not None else records.repeat()
    epochs = epoch_positions(num_objects, seed, first_epoch, num_epochs, shuffle=False)

    def to_pair(epoch_position, example):
        epoch = epoch_position[0]
        views, latents = [], []
        for k in sample_pair(seed, epoch, example["index"], tf.shape(example["images"])[0]):
            path = tf.strings.join(
                [f"tfds threediebench {split} ", example["object_id"], "/image_", tf.strings.as_string(k), ".jpg"]
            )
            views.append(decode_jpeg_checked(example["images"][k], path, size))
            latents.append(tf.ensure_shape(example["latents"][k], (LATENT_SIZE,)))
        element = pair_element(tuple(views), tuple(latents), example["label"], image_size)
        if with_index:
            element["index"] = example["index"]
        return element

    ds = tf.data.Dataset.zip(epochs, records).map(to_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_size is None:
        return ds
    return pair_batches(ds, batch_size, augment=augment, seed=seed)
