"""A JPEG damaged inside its compressed data passes the header check and decodes into garbage with
only a libjpeg warning on stderr; `check_decode` decodes every file once and names it, and a folder
of at most `decode_check_limit` images is checked so by default."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from keras_eqssl.data.image_files import BadFileError
from keras_eqssl.data.image_folder import list_image_folder


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _damaged(clean: bytes, count: int, seed: int) -> bytes:
    data, rng = bytearray(clean), np.random.default_rng(seed)
    for i in rng.integers(2000, len(data) - 2000, count):
        data[i] = rng.integers(0, 256)
    return bytes(data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    (root / "a").mkdir()
    (root / "b").mkdir()
    astronaut, coffee = skimage.data.astronaut(), skimage.data.coffee()
    (root / "a" / "clean.jpg").write_bytes(_jpeg(astronaut))
    (root / "b" / "clean.jpg").write_bytes(_jpeg(coffee))
    (root / "b" / "garbage.jpg").write_bytes(_damaged(_jpeg(astronaut), count=3, seed=1))
    return root


def test_the_damaged_jpeg_decodes_into_garbage_without_an_error(folder):
    import tensorflow as tf

    decoded = tf.io.decode_jpeg((folder / "b" / "garbage.jpg").read_bytes(), channels=3).numpy()
    assert np.abs(decoded.astype(float) - skimage.data.astronaut()).mean() > 10  # garbage, yet no error
    listing = list_image_folder(folder, decode_check_limit=0)  # the header check cannot see it
    assert len(listing.paths) == 3


def test_a_small_folder_is_decode_checked_by_default_naming_the_damaged_file(folder):
    with pytest.raises(BadFileError, match=r"garbage\.jpg.*damaged: the decoder reports 'Corrupt JPEG data"):
        list_image_folder(folder)  # 3 images: under the default limit
    assert len(list_image_folder(folder, decode_check_limit=2).paths) == 3  # over the limit: header check only


def test_the_training_source_names_the_damaged_file_before_training(folder):
    from keras_eqssl import default_config
    from keras_eqssl.data import source_from_config

    config = default_config.get_config()
    config.data.source, config.data.root, config.data.image_size = "image_folder", str(folder), 32
    with pytest.raises(BadFileError, match=r"garbage\.jpg"):
        source_from_config(config)


def test_check_decode_names_the_damaged_file_and_skip_bad_skips_it(folder):
    with pytest.raises(BadFileError, match=r"garbage\.jpg.*damaged: the decoder reports 'Corrupt JPEG data"):
        list_image_folder(folder, check_decode=True)
    with pytest.warns(UserWarning, match="skipped 1 bad file"):
        listing = list_image_folder(folder, check_decode=True, skip_bad=True)
    assert sorted(p.split("/")[-2:][0] + "/" + p.split("/")[-1] for p in listing.paths) == [
        "a/clean.jpg",
        "b/clean.jpg",
    ]
