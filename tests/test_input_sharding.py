"""Multi-worker input: file-based sources read disjoint shards that cover the data, each worker's
batches stay a pure function of (config, step, worker) for resume, and one process reads as before.

Workers are faked with `tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i)`,
the object a multi-worker strategy hands each worker."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_sources import KerasEqsslTinyColors
from threedie_fixture import write_threedie

from keras_eqssl.data.image_folder import image_folder
from keras_eqssl.data.sharding import marked_sharded, regroup_for_workers, shard_items
from keras_eqssl.data.tfds_source import tfds_images
from keras_eqssl.data.threedie import threedie_pairs
from keras_eqssl.data.train_batches import train_batches
from keras_eqssl.default_config import get_config

COUNT = 13  # odd: the two shards differ in size


def worker(i: int, count: int = 2) -> tf.distribute.InputContext:
    return tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=i)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A flat folder of COUNT flat-gray PNGs: image i has value 10 * i + 5 everywhere (its id)."""
    root = tmp_path_factory.mktemp("flat")
    for i in range(COUNT):
        Image.fromarray(np.full((12, 12, 3), 10 * i + 5, np.uint8)).save(root / f"img{i:02d}.png")
    return root


def ids(images) -> list[int]:
    return [int(image[0, 0, 0]) // 10 for image in images]


def assert_disjoint_cover(shards: list[list], everything: list) -> None:
    assert all(shards), "a worker got no items"
    assert not set(shards[0]) & set(shards[1]), "the workers' shards overlap"
    assert sorted(shards[0] + shards[1]) == sorted(everything), "the shards do not cover the data"


def test_shard_items_are_disjoint_and_cover():
    items = list(range(COUNT))
    assert_disjoint_cover([shard_items(items, worker(i)) for i in range(2)], items)
    assert shard_items(items, None) is None and shard_items(items, worker(0, 1)) is None
    assert shard_items(items[:2], worker(0, 3)) is None  # fewer items than workers: not sharded


def test_image_folder_workers_read_disjoint_files(folder):
    shards = []
    for i in range(2):
        ds = image_folder(folder, 8, shuffle=False, workers=worker(i))
        assert marked_sharded(ds)
        shards.append(ids(e["image"] for e in ds.as_numpy_iterator()))
    assert_disjoint_cover(shards, list(range(COUNT)))
    whole = image_folder(folder, 8, shuffle=False)
    assert not marked_sharded(whole) and len(list(whole)) == COUNT


def test_tfds_workers_read_disjoint_examples(tmp_path):
    KerasEqsslTinyColors(data_dir=str(tmp_path)).download_and_prepare()
    read = lambda w: [  # noqa: E731 - (label, pixel) of every example, in order
        (int(e["label"]), int(e["image"][0, 0].argmax()))
        for e in tfds_images("keras_eqssl_tiny_colors", "train", data_dir=tmp_path, workers=w).as_numpy_iterator()
    ]
    everything = read(None)
    shards = [read(worker(i)) for i in range(2)]
    assert len(shards[0]) + len(shards[1]) == len(everything) == 6 and min(map(len, shards)) == 3
    assert sorted(shards[0] + shards[1]) == sorted(everything)


@pytest.mark.slow  # about 5 s
def test_threedie_workers_read_disjoint_objects(tmp_path):
    root = write_threedie(tmp_path / "3die", num_train=5, num_val=1, size=16)
    index = lambda w: sorted(  # noqa: E731
        int(e["index"]) for e in threedie_pairs(root, "train", with_index=True, workers=w).as_numpy_iterator()
    )
    assert_disjoint_cover([index(worker(i)) for i in range(2)], index(None))


def folder_config(root, batch: int = 4):
    config = get_config()
    config.data.source, config.data.root = "image_folder", str(root)
    config.data.image_size, config.augment.size = 12, 8
    config.data.batch_size, config.augment.policy = batch, "simclr"
    return config


def local_steps(dataset, steps: int, workers: int) -> list[np.ndarray]:
    """The local batches (B / workers rows each) of the first `steps` steps of a regrouped stream."""
    out = []
    for batch in dataset.take(-(-steps // workers)).as_numpy_iterator():
        out += np.split(batch["views"]["v1"], workers)
    return out[:steps]


@pytest.mark.slow  # about 20 s: five pipelines with the SimCLR policy
def test_sharded_train_batches_resume_exactly_and_keep_to_the_shard(folder):
    config = folder_config(folder)
    ds, _ = train_batches(config, workers=worker(1))
    assert marked_sharded(ds)
    first = next(iter(ds))
    assert first["views"]["v1"].shape[0] == 4, "a regrouped batch has the global batch size"
    whole = local_steps(train_batches(config, workers=worker(1))[0], 5, 2)  # a fresh stream (reshuffles)
    for step in (1, 2):
        resumed, _ = train_batches(config, first_step=step, workers=worker(1))
        for k, got in enumerate(local_steps(resumed, 5 - step, 2)):
            np.testing.assert_array_equal(got, whole[step + k], err_msg=f"resumed at {step}, step {step + k}")
    other = local_steps(train_batches(config, workers=worker(0))[0], 5, 2)
    assert not all(np.array_equal(a, b) for a, b in zip(whole, other)), "both workers made the same batches"


@pytest.mark.slow  # about 8 s
def test_one_process_reads_as_before(folder):
    config = folder_config(folder)
    alone, _ = train_batches(config)
    one_worker, _ = train_batches(config, workers=worker(0, 1))
    assert not marked_sharded(alone) and not marked_sharded(one_worker)
    for a, b in zip(alone.take(3).as_numpy_iterator(), one_worker.take(3).as_numpy_iterator()):
        np.testing.assert_array_equal(a["views"]["v1"], b["views"]["v1"])


def test_regroup_stacks_consecutive_local_batches():
    local = tf.data.Dataset.range(12).map(lambda i: {"x": i}).batch(2, drop_remainder=True)
    grouped = regroup_for_workers(local, worker(0, 3))
    assert grouped.element_spec["x"].shape == (6,) and marked_sharded(grouped)
    assert [b["x"].tolist() for b in grouped.as_numpy_iterator()] == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
