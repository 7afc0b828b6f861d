"""Image sources: tfds by name (offline), an image folder, Fashion-MNIST from the Debian package."""

import gzip
import re
import struct

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_eqssl.data.fashion_mnist import FASHION_MNIST_DIR, fashion_mnist, fashion_mnist_available
from keras_eqssl.data.image_files import BadFileError
from keras_eqssl.data.image_folder import image_folder, list_image_folder
from keras_eqssl.data.tfds_source import tfds_images

# Flat colours (one per label) survive JPEG and resizing, so outputs can be checked by value.
COLORS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)


class KerasEqsslTinyColors(tfds.core.GeneratorBasedBuilder):
    """A 6-image classification set built offline: 12x20 flat-colour images, label = colour index."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(12, 20, 3)), "label": tfds.features.ClassLabel(num_classes=3)}
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(6):
            yield i, {"image": np.broadcast_to(COLORS[i % 3], (12, 20, 3)).copy(), "label": i % 3}


def test_tfds_images_by_name(tmp_path):
    KerasEqsslTinyColors(data_dir=str(tmp_path)).download_and_prepare()
    ds = tfds_images("keras_eqssl_tiny_colors", "train", data_dir=tmp_path, image_size=8)
    elements = list(ds.as_numpy_iterator())
    assert len(elements) == 6
    for e in elements:
        assert e["image"].shape == (8, 8, 3) and e["image"].dtype == np.uint8 and e["label"].dtype == np.int64
        np.testing.assert_array_equal(e["image"][4, 4], COLORS[e["label"]])
    assert sorted(int(e["label"]) for e in elements) == [0, 0, 1, 1, 2, 2]
    native = next(iter(tfds_images("keras_eqssl_tiny_colors", "train", data_dir=tmp_path)))
    assert native["image"].shape == (12, 20, 3)


def test_tfds_images_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'mnist' is not prepared in data_dir='" + re.escape(str(tmp_path))):
        tfds_images("mnist", "train", data_dir=tmp_path)
    assert not list(tmp_path.rglob("*.gz")), "nothing may be downloaded"
    with pytest.raises(ValueError, match="not a tfds dataset"):
        tfds_images("no_such_dataset_xyz", data_dir=tmp_path)


def _write_folder(root, sizes=((20, 30), (16, 16)), per_class=2):
    for label, name in enumerate(["b_cats", "a_dogs", "c_gray"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            if name == "c_gray":
                Image.fromarray(np.full((h, w), 77, np.uint8), mode="L").save(root / name / f"{i}.png")
            else:
                Image.fromarray(np.broadcast_to(COLORS[label], (h, w, 3)).copy()).save(root / name / f"{i}.jpg")
    return root


def test_image_folder(tmp_path):
    root = _write_folder(tmp_path / "folder")
    listing = list_image_folder(root)
    assert listing.class_names == ("a_dogs", "b_cats", "c_gray")
    elements = list(image_folder(root, image_size=8, seed=1).as_numpy_iterator())
    assert len(elements) == 6 and sorted(int(e["label"]) for e in elements) == [0, 0, 1, 1, 2, 2]
    expected = {0: COLORS[1], 1: COLORS[0], 2: [77, 77, 77]}  # labels follow the sorted folder names
    for e in elements:
        assert e["image"].shape == (8, 8, 3) and e["image"].dtype == np.uint8
        np.testing.assert_allclose(e["image"][4, 4], expected[int(e["label"])], atol=3)
    unshuffled = [int(e["label"]) for e in image_folder(root, 8, shuffle=False).as_numpy_iterator()]
    assert unshuffled == [0, 0, 1, 1, 2, 2]


def test_image_folder_empty_class(tmp_path):
    root = _write_folder(tmp_path / "folder")
    (root / "d_empty").mkdir()
    (root / "d_empty" / "notes.txt").write_text("no images here")
    with pytest.raises(BadFileError, match=re.escape(str(root / "d_empty")) + ".*empty"):
        image_folder(root, 8)
    with pytest.warns(UserWarning, match=r"skipped 1 bad file"):
        ds = image_folder(root, 8, skip_bad=True)
    assert len(list(ds)) == 6


def test_image_folder_corrupt_image(tmp_path):
    root = _write_folder(tmp_path / "folder")
    bad = root / "a_dogs" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(BadFileError, match=re.escape(str(bad)) + ".*truncated"):
        image_folder(root, 8)
    with pytest.warns(UserWarning, match=r"skipped 1 bad file.*" + re.escape(str(bad))):
        ds = image_folder(root, 8, skip_bad=True)
    assert len(list(ds)) == 5
    bad.write_bytes(b"plain text, not an image")
    ds = image_folder(root, 8, check_files=False, shuffle=False, decode_check_limit=0)  # the pipeline's own check
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not a JPEG, PNG, GIF or BMP.*" + re.escape(str(bad))):
        list(ds)


def test_image_folder_with_both_loose_images_and_class_subfolders_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "loose.jpg")
    (tmp_path / "cats").mkdir()
    with pytest.raises(BadFileError, match=re.escape(str(tmp_path)) + ".*both 1 image.*1 subfolder"):
        image_folder(tmp_path, 8)


def _write_idx(directory, images, labels, prefix="t10k", image_magic=2051):
    directory.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", image_magic, n, h, w) + images.tobytes())
    with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def test_fashion_mnist_reader_on_small_idx_files(tmp_path, rng):
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5])
    _write_idx(tmp_path, images, labels)
    ds = fashion_mnist("test", directory=tmp_path)
    assert ds.cardinality() == 5
    out = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([e["image"][..., 0] for e in out]), images)
    np.testing.assert_array_equal(np.stack([e["image"][..., 2] for e in out]), images)
    assert [int(e["label"]) for e in out] == labels.tolist()
    assert next(iter(fashion_mnist("test", directory=tmp_path, image_size=32, channels=1)))["image"].shape == (
        32,
        32,
        1,
    )


def test_fashion_mnist_bad_files(tmp_path, rng):
    with pytest.raises(BadFileError, match=re.escape(str(tmp_path)) + ".*apt-get install -y dataset-fashion-mnist"):
        fashion_mnist("train", directory=tmp_path)
    _write_idx(tmp_path, rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), np.zeros(2), image_magic=1234)
    with pytest.raises(BadFileError, match=re.escape(str(tmp_path / "t10k-images-idx3-ubyte.gz")) + ".*magic"):
        fashion_mnist("test", directory=tmp_path)


@pytest.mark.skipif(
    not fashion_mnist_available(), reason=f"Debian package dataset-fashion-mnist not installed ({FASHION_MNIST_DIR})"
)
def test_fashion_mnist_from_the_debian_package():
    test = fashion_mnist("test")
    assert test.cardinality() == 10_000 and fashion_mnist("train").cardinality() == 60_000
    with gzip.open(f"{FASHION_MNIST_DIR}/t10k-images-idx3-ubyte.gz") as f:
        first = np.frombuffer(f.read(16 + 784)[16:], np.uint8).reshape(28, 28)
    labels = [int(e["label"]) for e in test.take(2000).as_numpy_iterator()]
    element = next(iter(test))
    np.testing.assert_array_equal(element["image"][..., 0], first)
    assert element["image"].shape == (28, 28, 3) and int(element["label"]) == 9  # the first test image: ankle boot
    assert set(labels) == set(range(10))
