"""The scikit-image photo source and the views pipeline (determinism, resume)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_eqssl.augment.policies import simclr
from keras_eqssl.data import PHOTOS, skimage_photos, view_batches


def test_photos_are_deterministic_and_labelled():
    a = list(skimage_photos(image_size=32, num_images=20, seed=3).as_numpy_iterator())
    b = list(skimage_photos(image_size=32, num_images=20, seed=3).as_numpy_iterator())
    c = list(skimage_photos(image_size=32, num_images=20, seed=4).as_numpy_iterator())
    assert len(a) == 20
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))
    assert a[0]["image"].shape == (32, 32, 3) and a[0]["image"].dtype == np.uint8
    assert [x["label"] for x in a] == [i % len(PHOTOS) for i in range(20)]
    assert np.std(a[0]["image"]) > 5  # a real photo, not a flat image


def test_photo_splits_partition_the_photos():
    from keras_eqssl.data import HELD_OUT_PHOTOS, photo_names

    train, test = photo_names("train"), photo_names("test")
    assert test == HELD_OUT_PHOTOS and not set(train) & set(test)
    assert sorted(train + test) == sorted(PHOTOS) and photo_names("all") == PHOTOS
    assert {"cat", "chelsea"} <= set(train)  # the same photo twice: never split across train and test
    crops = list(skimage_photos(image_size=32, num_images=8, photos="test").as_numpy_iterator())
    assert [x["label"] for x in crops] == [i % 4 for i in range(8)]
    everything = list(skimage_photos(image_size=32, num_images=len(PHOTOS), seed=9).as_numpy_iterator())
    held = list(skimage_photos(image_size=32, num_images=4, seed=9, photos="test").as_numpy_iterator())
    first_test = PHOTOS.index(HELD_OUT_PHOTOS[0])  # crop i of photo i % P: same draw for the same i
    assert np.array_equal(held[0]["image"], everything[0]["image"]) == (first_test == 0)


def test_photo_tiles_never_overlap(monkeypatch):
    quadrant = np.zeros((256, 256, 3), np.uint8)  # a fake photo whose value says the quadrant
    for k, (y, x) in enumerate([(0, 0), (0, 128), (128, 0), (128, 128)]):
        quadrant[y : y + 128, x : x + 128] = 40 + 60 * k
    monkeypatch.setattr("keras_eqssl.data.photos.load_photos", lambda names: np.stack([quadrant] * len(names)))
    crops = list(skimage_photos(image_size=24, num_images=64, seed=2, photos="test", tiles=2).as_numpy_iterator())
    assert [int(c["label"]) for c in crops] == [i % 16 for i in range(64)]  # 4 photos x 4 tiles
    for c in crops:
        values, counts = np.unique(c["image"], return_counts=True)
        assert values[np.argmax(counts)] == 40 + 60 * (int(c["label"]) % 4)  # inside its own quadrant
        assert counts.max() >= 0.8 * c["image"].size  # (at most a bilinear edge from the next one)


def test_bad_source_arguments():
    with pytest.raises(ValueError, match="image_size"):
        skimage_photos(image_size=0)
    with pytest.raises(ValueError, match="tiles must be >= 1; received 8, 2048, 0"):
        skimage_photos(image_size=8, tiles=0)
    with pytest.raises(ValueError, match=r"unknown photo split 'val'; known: \('all', 'train', 'test'\)"):
        skimage_photos(image_size=8, photos="val")


def test_view_batches_batch_format():
    ds = view_batches(skimage_photos(image_size=48, num_images=16), simclr(32), batch_size=8, seed=1)
    batch = next(iter(ds))
    assert set(batch) == {"views", "params", "label"}
    assert batch["views"]["v1"].shape == (8, 32, 32, 3)
    assert batch["params"]["v2"]["crop"].shape == (8, 4)
    assert batch["label"].shape == (8,)
    assert len(list(ds)) == 2


def test_resumed_pipeline_draws_the_same_parameters():
    """A run resumed at step 2 must draw what the uninterrupted run drew at step 2."""
    source = skimage_photos(image_size=48, num_images=32, seed=0)
    policy = simclr(32)
    full = list(view_batches(source, policy, batch_size=8, seed=5))
    resumed = list(view_batches(source.skip(16), policy, batch_size=8, seed=5, first_step=2))
    assert len(resumed) == 2
    for k in range(2):
        for key, value in full[k + 2]["params"]["v1"].items():
            np.testing.assert_array_equal(value.numpy(), resumed[k]["params"]["v1"][key].numpy())
        np.testing.assert_allclose(full[k + 2]["views"]["v2"], resumed[k]["views"]["v2"], atol=1e-6)
    # and a different replica draws different parameters
    other = next(iter(view_batches(source, policy, batch_size=8, seed=5, replica=1)))
    assert not np.array_equal(other["params"]["v1"]["crop"], full[0]["params"]["v1"]["crop"])


def test_view_batches_rejects_image_tensors():
    with pytest.raises(ValueError, match="image"):
        view_batches(tf.data.Dataset.from_tensor_slices(tf.zeros((4, 8, 8, 3))), simclr(8), 2)
