"""The 3DIEBench tfds builder, and that its pairs are the raw reader's pairs, tensor for tensor."""

import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from threedie_fixture import write_threedie

from keras_eqssl.data.image_files import BadFileError
from keras_eqssl.data.threedie import threedie_pairs
from keras_eqssl.data.threedie_tfds import ThreeDIEBench, tfds_pairs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = write_threedie(tmp_path_factory.mktemp("raw"), num_train=5, num_val=3, num_views=4, size=24)
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = ThreeDIEBench(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    return root, data_dir, builder


def test_builder_stores_every_view(built):
    root, _, builder = built
    assert builder.info.splits["train"].num_examples == 5 and builder.info.splits["val"].num_examples == 3
    names, labels = np.load(root / "val_images.npy"), np.load(root / "val_labels.npy")
    examples = list(builder.as_dataset(split="val").as_numpy_iterator())
    assert sorted(int(e["index"]) for e in examples) == [0, 1, 2]
    for e in examples:
        index, object_id = int(e["index"]), e["object_id"].decode()
        assert names[index].strip("/") == object_id and e["label"] == labels[index]
        assert e["images"].shape == (4, 24, 24, 3) and e["latents"].shape == (4, 7)
        for k in range(4):
            np.testing.assert_array_equal(e["latents"][k], np.load(root / object_id / f"latent_{k}.npy"))


@pytest.mark.parametrize("split,seed,image_size", [("train", 0, None), ("val", 11, 16)])
def test_tfds_pairs_equal_raw_pairs(built, split, seed, image_size):
    root, data_dir, _ = built
    kwargs = dict(seed=seed, num_epochs=2, image_size=image_size, with_index=True)
    raw = list(threedie_pairs(root, split, **kwargs).as_numpy_iterator())
    via_tfds = list(tfds_pairs(data_dir, split, **kwargs).as_numpy_iterator())
    assert len(raw) == len(via_tfds)
    n = len(raw) // 2
    for epoch in range(2):  # compare object by object within each epoch (the orders differ)
        a = {int(e["index"]): e for e in raw[epoch * n : (epoch + 1) * n]}
        b = {int(e["index"]): e for e in via_tfds[epoch * n : (epoch + 1) * n]}
        assert sorted(a) == sorted(b) == list(range(n))
        for i in a:
            for key in ("views", "latent"):
                for view in ("v1", "v2"):
                    assert a[i][key][view].dtype == b[i][key][view].dtype
                    np.testing.assert_array_equal(a[i][key][view], b[i][key][view], err_msg=f"{key} {view} of {i}")
            for key in ("rel_rotation", "rel_color", "label"):
                assert a[i][key].dtype == b[i][key].dtype
                np.testing.assert_array_equal(a[i][key], b[i][key], err_msg=f"{key} of {i}")


def test_tfds_pairs_batched(built):
    _, data_dir, _ = built
    batch = next(iter(tfds_pairs(data_dir, "train", batch_size=2)))
    assert batch["views"]["v1"].shape == (2, 24, 24, 3) and batch["rel_rotation"].shape == (2, 4)


def test_not_prepared_names_the_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path)) + ".*download_and_prepare"):
        tfds_pairs(tmp_path, "train")


def test_build_from_a_root_in_the_wrong_format(tmp_path):
    (tmp_path / "raw" / "cats").mkdir(parents=True)  # an image folder, not a 3DIEBench root
    (tmp_path / "raw" / "cats" / "a.jpg").write_bytes(b"")
    builder = ThreeDIEBench(data_dir=str(tmp_path / "tfds"))
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "raw"))
    with pytest.raises(BadFileError, match=re.escape(str(tmp_path / "raw" / "train_images.npy"))):
        builder.download_and_prepare(download_config=config)
