"""Bad 3DIEBench input: an error naming the file, or with skip_bad a warning that counts the skipped files."""

import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from threedie_fixture import patterned_image, write_threedie

from keras_eqssl.data.image_files import BadFileError
from keras_eqssl.data.threedie import threedie_pairs


@pytest.fixture
def root(tmp_path):
    return write_threedie(tmp_path / "root", num_train=3, num_val=1, num_views=3, size=16)


def _first_object(root):
    return root / "00000000" / "obj0"


def _second_object(root):
    """With check_files=False the reader reads the first object's view 0 eagerly (size, dtype): spoil another."""
    return root / "00000001" / "obj1"


def _consume(ds):
    return list(ds.as_numpy_iterator())


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_missing_latent(root):
    (_first_object(root) / "latent_1.npy").unlink()
    with pytest.raises(BadFileError, match=re.escape(str(_first_object(root) / "latent_1.npy"))):
        threedie_pairs(root, "train")


@pytest.mark.parametrize("content", ["three_floats", "float64_8", "truncated", "not_npy"])
def test_wrong_latent_is_named_at_construction(root, content):
    path = _first_object(root) / "latent_2.npy"
    if content == "three_floats":
        np.save(path, np.zeros(3, np.float32))
    elif content == "float64_8":
        np.save(path, np.zeros(8))
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:-5])
    else:
        path.write_bytes(b"hello world")
    with pytest.raises(BadFileError, match=re.escape(str(path))):
        threedie_pairs(root, "train")


def test_wrong_latent_is_named_in_the_graph(root):
    """check_files=False leaves the latent check to the reader, whose error still names the file."""
    obj = _second_object(root)
    for k in range(3):
        np.save(obj / f"latent_{k}.npy", np.zeros(3, np.float32))
    ds = threedie_pairs(root, "train", check_files=False, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(str(obj)) + r"/latent_\d\.npy"):
        _consume(ds)


def test_corrupt_jpeg(root):
    path = _first_object(root) / "image_0.jpg"
    _truncate(path)
    with pytest.raises(BadFileError, match=re.escape(str(path)) + ".*truncated or corrupt JPEG"):
        threedie_pairs(root, "train")


def test_corrupt_jpeg_in_the_graph(root):
    obj = _second_object(root)
    for k in range(3):
        _truncate(obj / f"image_{k}.jpg")
    (obj / "image_0.jpg").write_bytes(b"GIF89a not a jpeg")
    ds = threedie_pairs(root, "train", check_files=False, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"corrupt or truncated JPEG.*" + re.escape(str(obj))):
        _consume(ds)


def test_split_names_an_object_not_on_disk(root):
    names = np.load(root / "train_images.npy")
    np.save(root / "train_images.npy", np.concatenate([names, ["/00000001/ghost/"]]))
    np.save(root / "train_labels.npy", np.concatenate([np.load(root / "train_labels.npy"), [1]]))
    with pytest.raises(BadFileError, match=re.escape(str(root / "00000001" / "ghost")) + ".*does not exist"):
        threedie_pairs(root, "train")


def test_labels_do_not_match_the_split(root):
    np.save(root / "train_labels.npy", np.zeros(2, np.int64))
    with pytest.raises(BadFileError, match=re.escape(str(root / "train_labels.npy")) + ".*2 labels"):
        threedie_pairs(root, "train")


def test_mixed_image_sizes(root):
    path = root / "00000001" / "obj1" / "image_2.jpg"
    Image.fromarray(patterned_image(np.random.default_rng(0), 20)).save(path)
    with pytest.raises(BadFileError, match=re.escape(str(path)) + ".*mixed image sizes"):
        threedie_pairs(root, "train")


def test_mixed_image_sizes_in_the_graph(root):
    obj = root / "00000001" / "obj1"
    for k in range(3):
        Image.fromarray(patterned_image(np.random.default_rng(k), 20)).save(obj / f"image_{k}.jpg")
    ds = threedie_pairs(root, "train", check_files=False, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mixed image sizes.*" + re.escape(str(obj))):
        _consume(ds)


def test_root_in_the_wrong_format(tmp_path):
    (tmp_path / "cats").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "cats" / "a.jpg")
    with pytest.raises(BadFileError, match=re.escape(str(tmp_path / "train_images.npy")) + ".*3DIEBench root"):
        threedie_pairs(tmp_path, "train")
    with pytest.raises(BadFileError, match="not a directory"):
        threedie_pairs(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="split"):
        threedie_pairs(tmp_path, "test")


def test_object_with_one_view(root):
    obj = _first_object(root)
    for k in (1, 2):
        (obj / f"image_{k}.jpg").unlink()
        (obj / f"latent_{k}.npy").unlink()
    with pytest.raises(BadFileError, match=re.escape(str(obj)) + ".*at least 2"):
        threedie_pairs(root, "train")


def test_skip_bad_warns_with_the_count_and_keeps_the_other_pairs(root):
    clean = {int(e["index"]): e for e in _consume(threedie_pairs(root, "train", seed=2, with_index=True))}
    obj = _first_object(root)
    _truncate(obj / "image_1.jpg")
    (obj / "latent_2.npy").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipped 2 bad file\(s\) by skipping 1 of 3 objects"):
        ds = threedie_pairs(root, "train", seed=2, with_index=True, skip_bad=True)
    kept = {int(e["index"]): e for e in _consume(ds)}
    assert sorted(kept) == [1, 2], "object 0 is skipped, the others keep their split index"
    for i in kept:
        np.testing.assert_array_equal(kept[i]["views"]["v1"], clean[i]["views"]["v1"])
        np.testing.assert_array_equal(kept[i]["rel_rotation"], clean[i]["rel_rotation"])
    with pytest.raises(BadFileError, match="2 bad file"):
        threedie_pairs(root, "train")
