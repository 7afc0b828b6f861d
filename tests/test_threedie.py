"""The raw 3DIEBench reader: pair elements, SIE targets, stateless sampling, batching and augmentation."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.transform import Rotation
from threedie_fixture import write_threedie

from keras_eqssl.augment.compose import Compose
from keras_eqssl.augment.crop import RandomResizedCrop
from keras_eqssl.augment.flip import Flip
from keras_eqssl.augment.policies import ViewsPolicy
from keras_eqssl.data.threedie import normalize_3diebench, sample_pair, threedie_pairs
from keras_eqssl.data.threedie_index import list_objects

NUM_VIEWS = 5


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_threedie(tmp_path_factory.mktemp("threedie"), num_train=6, num_val=3, num_views=NUM_VIEWS, size=32)


def _by_index(ds):
    return {int(e["index"]): e for e in ds.as_numpy_iterator()}


def _view_index(root, object_id, latent):
    """Which view k of the object has this latent (the fixture's latents are all distinct)."""
    for k in range(NUM_VIEWS):
        if np.array_equal(np.load(root / object_id / f"latent_{k}.npy"), latent):
            return k
    raise AssertionError(f"latent {latent} is not one of {object_id}'s")


def test_listing(root):
    objects = list_objects(root, "train")
    assert len(objects) == 6 and objects.image_size == (32, 32) and objects.latent_dtype == "float32"
    assert objects.object_ids[1] == "00000001/obj1"
    np.testing.assert_array_equal(objects.labels, np.load(root / "train_labels.npy"))
    np.testing.assert_array_equal(objects.num_views, [NUM_VIEWS] * 6)


def test_pair_elements_match_the_files_and_sie_targets(root):
    objects = list_objects(root, "train")
    elements = _by_index(threedie_pairs(root, "train", seed=3, with_index=True))
    assert sorted(elements) == list(range(6))
    for index, e in elements.items():
        assert e["views"]["v1"].shape == (32, 32, 3) and e["views"]["v1"].dtype == np.uint8
        assert e["latent"]["v1"].shape == (7,) and e["latent"]["v1"].dtype == np.float32
        assert e["rel_rotation"].shape == (4,) and e["rel_rotation"].dtype == np.float32
        assert e["rel_color"].shape == (2,) and e["label"].dtype == np.int64
        object_id = objects.object_ids[index]
        k1 = _view_index(root, object_id, e["latent"]["v1"])
        k2 = _view_index(root, object_id, e["latent"]["v2"])
        assert k1 != k2
        for view, k in (("v1", k1), ("v2", k2)):
            decoded = tf.io.decode_jpeg(
                tf.io.read_file(str(root / object_id / f"image_{k}.jpg")), channels=3, dct_method="INTEGER_ACCURATE"
            )
            np.testing.assert_array_equal(e["views"][view], decoded.numpy())
        l1, l2 = e["latent"]["v1"], e["latent"]["v2"]
        expected = (Rotation.from_euler("xyz", l1[:3]).inv() * Rotation.from_euler("xyz", l2[:3])).as_quat()
        np.testing.assert_allclose(e["rel_rotation"], expected, atol=1e-6)
        np.testing.assert_allclose(e["rel_color"], l2[[3, 6]] - l1[[3, 6]], atol=1e-7)
        assert e["label"] == objects.labels[index]


def test_pairs_are_a_function_of_seed_epoch_and_object(root):
    def pairs(seed, first_epoch=0, num_epochs=1, shuffle=True):
        ds = threedie_pairs(
            root, "train", seed=seed, first_epoch=first_epoch, num_epochs=num_epochs, shuffle=shuffle, with_index=True
        )
        return [(int(e["index"]), tuple(e["latent"]["v1"]), tuple(e["latent"]["v2"])) for e in ds.as_numpy_iterator()]

    a = pairs(0, num_epochs=3)
    assert a == pairs(0, num_epochs=3)
    assert len(a) == 18 and all(sorted(i for i, *_ in a[6 * e : 6 * e + 6]) == list(range(6)) for e in range(3))
    assert [i for i, *_ in a[:6]] != [i for i, *_ in a[6:12]], "each epoch should have its own order"
    assert pairs(0, first_epoch=1, num_epochs=2) == a[6:], "resuming at epoch 1 must give epochs 1 and 2"
    assert sorted(pairs(0, shuffle=False)) == sorted(a[:6]), "the order must not change the pairs"
    assert [i for i, *_ in pairs(0, shuffle=False)] == list(range(6))
    assert sorted(a[:6]) != sorted(a[6:12]), "a new epoch should draw new pairs"
    assert sorted(pairs(1)) != sorted(a[:6]), "another seed should draw other pairs"


def test_sample_pair_is_uniform_over_distinct_pairs():
    draws = tf.data.Dataset.range(6000).map(lambda e: tf.stack(sample_pair(5, e, 7, 4)))
    pairs = np.array(list(draws.as_numpy_iterator()))
    assert (pairs[:, 0] != pairs[:, 1]).all() and pairs.min() >= 0 and pairs.max() <= 3
    counts = np.bincount(pairs[:, 0] * 4 + pairs[:, 1], minlength=16).reshape(4, 4)
    assert np.all(np.diag(counts) == 0)
    off = counts[~np.eye(4, dtype=bool)]
    assert abs(off / 6000 - 1 / 12).max() < 0.02, counts  # 12 ordered pairs, sd of each share ~0.0036


def test_batches_resize_and_augment(root):
    batch = next(iter(threedie_pairs(root, "train", batch_size=4, image_size=16)))
    assert batch["views"]["v2"].shape == (4, 16, 16, 3) and batch["views"]["v2"].dtype == tf.uint8
    assert batch["rel_rotation"].shape == (4, 4) and batch["latent"]["v1"].shape == (4, 7)
    assert "params" not in batch

    def chain(size):  # crop + flip: cheap to trace (the full SimCLR chain takes seconds)
        return Compose([RandomResizedCrop(size), Flip()])

    one_view = ViewsPolicy({"v": chain(24)})
    ds = threedie_pairs(root, "train", seed=1, batch_size=4, augment=one_view)
    batch = next(iter(ds))
    assert batch["views"]["v1"].shape == (4, 24, 24, 3) and batch["views"]["v1"].dtype == tf.float32
    assert batch["params"]["v1"]["crop"].shape == (4, 4)
    assert not np.array_equal(batch["params"]["v1"]["crop"], batch["params"]["v2"]["crop"])
    again = next(iter(threedie_pairs(root, "train", seed=1, batch_size=4, augment=one_view)))
    np.testing.assert_array_equal(batch["views"]["v2"], again["views"]["v2"])
    plain = next(iter(threedie_pairs(root, "train", seed=1, batch_size=4)))
    np.testing.assert_array_equal(batch["rel_rotation"], plain["rel_rotation"])

    two_views = next(
        iter(threedie_pairs(root, "train", batch_size=2, augment=ViewsPolicy({"a": chain(16), "b": chain(8)})))
    )
    assert two_views["views"]["v1"].shape == (2, 16, 16, 3), "pair view 1 takes the policy's first view"
    assert two_views["views"]["v2"].shape == (2, 8, 8, 3) and two_views["params"]["v2"]["flip"].shape == (2, 1)
    with pytest.raises(ValueError, match="batch_size"):
        threedie_pairs(root, "train", augment=one_view)


def test_normalize():
    x = normalize_3diebench(tf.fill((2, 2, 3), tf.constant(128, tf.uint8)))
    np.testing.assert_allclose(
        x[0, 0], (128 / 255 - np.array([0.5016, 0.5037, 0.5060])) / [0.1030, 0.0999, 0.0969], atol=1e-5
    )


def test_jpeg_decode_matches_pil(tmp_path):
    """The 3DIEBench reader decodes JPEGs with libjpeg's accurate DCT, as PIL / torchvision (SIE's loader)."""
    Image = pytest.importorskip("PIL.Image")
    from keras_eqssl.data.image_files import decode_jpeg_checked

    pixels = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype("uint8")
    path = str(tmp_path / "image_0.jpg")
    Image.fromarray(pixels).resize((64, 64), Image.BILINEAR).save(path, quality=90)
    ours = decode_jpeg_checked(tf.io.read_file(path), tf.constant(path)).numpy()
    np.testing.assert_array_equal(ours, np.asarray(Image.open(path).convert("RGB")))
