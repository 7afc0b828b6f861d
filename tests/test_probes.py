"""Probes: R², heads, feature extraction and cache, the parameter and 3DIEBench probes, kNN, the online probe."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from method_helpers import TINY_SIZE, make_pair_model
from probe_helpers import (
    conv_encoder,
    photo_array,
    rotation_trained_encoder,
    save_encoder_module,
    split_encode,
)
from threedie_fixture import write_threedie

from keras_eqssl.methods import PairModel
from keras_eqssl.probes import (
    FAMILIES,
    OnlineLinearProbe,
    classification_probe,
    encoder_from_model,
    encoder_from_saved_model,
    extract,
    extract_param_features,
    family_ops,
    knn_top1,
    linear_top1,
    param_probe,
    r2_global_mean,
    r2_mean,
    r2_per_dim,
    resolve_heads,
    threedie_probe,
    train_head,
)

FAST_HEADS = {"linear": {}, "mlp": {"hidden_units": (16,)}}


# --- R² ---------------------------------------------------------------------------------------
def textbook_r2(y, p):
    """1 - SS_res / SS_tot per column, written out."""
    out = []
    for j in range(y.shape[1]):
        mean = sum(y[:, j]) / len(y)
        ss_tot = sum((v - mean) ** 2 for v in y[:, j])
        ss_res = sum((a - b) ** 2 for a, b in zip(y[:, j], p[:, j]))
        out.append(1 - ss_res / ss_tot)
    return np.array(out)


def test_r2_matches_textbook_formula_and_sklearn(rng):
    y = rng.normal(size=(200, 4)) * [1, 2, 3, 4] + [0, 1, -1, 5]
    p = y + rng.normal(size=y.shape) * [0.5, 1, 3, 8]
    per_dim = r2_per_dim(y, p)
    np.testing.assert_allclose(per_dim, textbook_r2(y, p), rtol=1e-10)
    assert r2_mean(y, p) == pytest.approx(per_dim.mean())
    m = y.mean()  # SIE: one scalar mean over every element
    assert r2_global_mean(y, p) == pytest.approx(1 - ((y - p) ** 2).sum() / ((y - m) ** 2).sum())
    # 1-D input is one column; for one column the two definitions agree.
    assert r2_mean(y[:, 0], p[:, 0]) == pytest.approx(per_dim[0])
    assert r2_global_mean(y[:, :1], p[:, :1]) == pytest.approx(per_dim[0])
    # The global mean counts the spread of the column means: predicting them scores > 0 there.
    means = np.tile(y.mean(0), (len(y), 1))
    np.testing.assert_allclose(r2_per_dim(y, means), 0.0, atol=1e-12)
    assert r2_global_mean(y, means) > 0.1
    try:
        from sklearn.metrics import r2_score
    except ImportError:
        return
    np.testing.assert_allclose(per_dim, r2_score(y, p, multioutput="raw_values"), rtol=1e-10)
    assert r2_mean(y, p) == pytest.approx(r2_score(y, p))


def test_r2_constant_target_and_bad_input():
    y = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    # sklearn's force_finite convention: constant column -> 1.0 if exact, else 0.0.
    np.testing.assert_array_equal(r2_per_dim(y, y), [1.0, 1.0])
    assert r2_per_dim(y, y + [[0.5, 0.0]] * 3)[0] == 0.0
    assert r2_global_mean(np.ones((4, 2)), np.ones((4, 2))) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        r2_per_dim(y, y[:, :1])
    with pytest.raises(ValueError, match="finite"):
        r2_mean([1.0, np.nan], [1.0, 2.0])


# --- heads ------------------------------------------------------------------------------------
def test_linear_head_recovers_a_target_contained_in_the_features(rng):
    target = rng.normal(size=(1200, 3)) * [1.0, 10.0, 0.1]
    x = np.concatenate([target, rng.normal(size=(1200, 13))], axis=1)  # features = [target, noise]
    head = train_head(x[:1000], target[:1000], seed=0)
    scores = r2_per_dim(target[1000:], head.predict(x[1000:]))
    assert scores.min() > 0.99, scores
    again = train_head(x[:1000], target[:1000], seed=0)  # deterministic for a seed
    np.testing.assert_array_equal(head.predict(x[1000:]), again.predict(x[1000:]))


def test_heads_classification_and_errors(rng):
    x = rng.normal(size=(400, 8))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
    assert linear_top1(x[:300], y[:300], x[300:], y[300:], epochs=60) > 0.85
    mlp = train_head(x[:300], y[:300], task="classification", hidden_units=(16,), epochs=5, patience=None)
    assert mlp.predict(x[300:]).shape == (100, 4)
    with pytest.raises(ValueError, match="task must be one of"):
        train_head(x, y, task="ranking")
    with pytest.raises(ValueError, match=r"Unknown head 'deep'; known: \['linear', 'mlp'\]"):
        resolve_heads(["linear", "deep"])
    assert resolve_heads({"mlp": {"hidden_units": (8,)}}, {"epochs": 3})["mlp"] == {"hidden_units": (8,), "epochs": 3}


# --- the augmentation-parameter probe ------------------------------------------------------------
def test_param_probe_trained_encoder_beats_random_on_rotation():
    images = photo_array(512, 32, 0)
    options = dict(families=["rotation"], heads=FAST_HEADS, head_options={"epochs": 60}, seed=0)
    random = param_probe(encoder_from_model(conv_encoder(seed=0)), images, **options)
    trained = param_probe(encoder_from_model(rotation_trained_encoder()), images, **options)
    for head in FAST_HEADS:
        r_random = random["results"]["embedding"][head]["rotation"]["r2"]["rotation"]
        r_trained = trained["results"]["embedding"][head]["rotation"]["r2"]["rotation"]
        # Random pooled conv features hardly tell the angle (R² ~0.0 here); training makes it explicit (~0.8).
        assert r_random < 0.2, (head, r_random)
        assert r_trained > 0.5 and r_trained > r_random + 0.3, (head, r_random, r_trained)
    assert random["num_train"] + random["num_test"] == 512 and random["num_test"] == 128
    json.dumps(trained)


def test_param_probe_all_families_keys_and_determinism(tmp_path):
    images = photo_array(64, 16, 3)
    calls = []

    def encode(x):
        calls.append(len(x))
        return split_encode(x)

    kwargs = dict(parts=["invariant", "equivariant"], heads=["linear"], head_options={"epochs": 2}, batch_size=32)
    out = param_probe(encode, images, transforms_per_image=2, cache=tmp_path, model_key="numpy-split", **kwargs)
    assert out["families"] == {
        "rotation": ["rotation"],
        "color": ["brightness", "contrast", "saturation", "hue"],
        "blur": ["blur"],
        "translation": ["tx", "ty"],
        "all": ["brightness", "contrast", "saturation", "hue", "blur", "rotation", "tx", "ty"],
    }
    assert list(out["results"]) == ["invariant", "equivariant"]
    for family, names in out["families"].items():
        scores = out["results"]["equivariant"]["linear"][family]
        assert list(scores["r2"]) == names and np.isfinite(scores["r2_mean"])
    assert out["num_train"] + out["num_test"] == 2 * 64
    # 2 batches x (originals + 5 families x 2 copies) encoder calls; the second run reads the cache.
    assert len(calls) == 2 * 11
    again = param_probe(encode, images, transforms_per_image=2, cache=tmp_path, model_key="numpy-split", **kwargs)
    assert len(calls) == 22 and again == out
    json.dumps(out)


def test_param_draws_depend_on_seed_and_image_not_on_batching():
    images = photo_array(64, 16, 3)
    a = extract_param_features(split_encode, images, ["rotation", "translation"], batch_size=16, seed=5)
    b = extract_param_features(split_encode, images, ["translation"], batch_size=64, seed=5)
    c = extract_param_features(split_encode, images, ["translation"], batch_size=64, seed=6)
    ta, tb = a["families"]["translation"]["targets"], b["families"]["translation"]["targets"]
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(
        a["families"]["translation"]["features"]["embedding"], b["families"]["translation"]["features"]["embedding"]
    )
    assert not np.array_equal(tb, c["families"]["translation"]["targets"])
    assert np.abs(ta).max() <= 10.0 and ta.std() > 3.0  # U(-10, 10) px
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": np.zeros(64, np.int32)})
    d = extract_param_features(split_encode, ds, ["translation"], batch_size=24, seed=5)
    np.testing.assert_array_equal(d["families"]["translation"]["targets"], tb)
    rot = a["families"]["rotation"]["targets"]
    assert rot.shape == (64, 1) and np.abs(rot).max() <= 45.0


def test_param_probe_errors():
    images = photo_array(64, 16, 3)
    with pytest.raises(ValueError, match=r"Unknown parameter family \['scale'\]; known: \[.*'rotation'.*\]"):
        param_probe(split_encode, images, families=["rotation", "scale"])
    with pytest.raises(ValueError, match=r"Unknown parameter family 'scale'; known: \['rotation', 'color'"):
        family_ops("scale")
    with pytest.raises(ValueError, match=r"Unknown part \['pooled'\]; known"):
        param_probe(split_encode, images, parts=["pooled"])
    assert len(FAMILIES) == 5 and [type(op).__name__ for op in family_ops("blur")] == ["GaussianBlur"]


# --- classification ---------------------------------------------------------------------------
def test_knn_separable_clusters_and_random_labels(rng):
    centres = rng.normal(size=(5, 32)) * 5
    y = rng.integers(0, 5, 1000)
    x = centres[y] + rng.normal(size=(1000, 32))
    for weighting in ("similarity", "majority"):
        assert knn_top1(x[:800], y[:800], x[800:], y[800:], weighting=weighting) == 1.0
    noise = rng.normal(size=(3000, 32))
    labels = rng.integers(0, 5, 3000)
    chance = knn_top1(noise[:2000], labels[:2000], noise[2000:], labels[2000:])
    assert abs(chance - 0.2) < 0.06, chance
    with pytest.raises(ValueError, match="weighting must be one of"):
        knn_top1(x, y, x, y, weighting="distance")


def test_classification_probe_on_photos():
    images = photo_array(160, 16, 0)
    labels = np.arange(160) % 16  # skimage_photos: label = photo index = i % 16
    out = classification_probe(
        split_encode, (images[:128], labels[:128]), (images[128:], labels[128:]), head_options={"epochs": 20}
    )
    assert out["num_train"] == 128 and out["num_test"] == 32
    assert set(out["results"]) == {"embedding", "invariant", "equivariant"}
    assert out["results"]["embedding"]["knn_top1"] > 0.3  # colour statistics tell the photos apart
    json.dumps(out)


# --- 3DIEBench ----------------------------------------------------------------------------------
def test_threedie_probe_returns_the_documented_keys(tmp_path):
    root = write_threedie(tmp_path / "3die", num_train=6, num_val=3, num_views=5, size=32)
    out = threedie_probe(
        split_encode,
        root,
        targets=["rotation", "color", "class"],
        heads=FAST_HEADS,
        head_options={"epochs": 3},
        pairs_per_object=4,
        batch_size=16,
    )
    assert out["protocol"] == "3diebench"
    assert (out["num_train"], out["num_val"]) == (24, 12)
    assert out["parts"] == ["embedding", "invariant", "equivariant"] and out["heads"] == ["linear", "mlp"]
    for part in out["parts"]:
        for head in out["heads"]:
            scores = out["results"][part][head]
            assert list(scores["rotation"]["r2"]) == ["qx", "qy", "qz", "qw"]
            assert list(scores["color"]["r2"]) == ["floor_hue", "light_hue"]
            for target in ("rotation", "color"):
                assert set(scores[target]) == {"r2", "r2_mean", "r2_global"}
                assert np.isfinite(scores[target]["r2_global"])
            assert 0.0 <= scores["class"]["top1"] <= 1.0
    json.dumps(out)
    with pytest.raises(
        ValueError, match=r"Unknown 3DIEBench target \['pose'\]; known: \['class', 'color', 'rotation'\]"
    ):
        threedie_probe(split_encode, root, targets=["pose"])


# --- features: extraction, cache, encoders ------------------------------------------------------
def test_extract_batches_caches_and_keeps_labels(tmp_path):
    images = photo_array(40, 16, 0)
    calls = []

    def encode(x):
        calls.append(len(x))
        return split_encode(x)

    feats = extract(encode, images, batch_size=16)
    assert calls == [16, 16, 8] and feats["embedding"].shape == (40, 18)
    first = extract(encode, images, 16, cache=tmp_path, model_key="m1")
    second = extract(encode, images, 16, cache=tmp_path, model_key="m1")
    assert len(calls) == 6  # the second call read the .npz
    np.testing.assert_array_equal(first["invariant"], second["invariant"])
    extract(encode, images[:20], 16, cache=tmp_path, model_key="m1")  # other data: another entry
    extract(encode, images, 16, cache=tmp_path, model_key="m2")  # other model: another entry
    assert len(list(tmp_path.glob("features-*.npz"))) == 3

    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": np.arange(40) % 3})
    out = extract(encode, ds, batch_size=16, parts=["invariant"])
    assert set(out) == {"image", "label"} and list(out["image"]) == ["invariant"]
    np.testing.assert_allclose(out["image"]["invariant"], feats["invariant"], rtol=1e-6)
    np.testing.assert_array_equal(out["label"], np.arange(40) % 3)
    with pytest.raises(ValueError, match="needs data_key"):
        extract(encode, ds, cache=tmp_path, model_key="m1")
    with pytest.raises(ValueError, match="needs a model_key"):
        extract(encode, images, cache=tmp_path)
    with pytest.raises(ValueError, match=r"returns \['embedding', 'equivariant', 'invariant'\], not \['tokens'\]"):
        extract(encode, images, parts=["tokens"])
    with pytest.raises(ValueError, match=r"expected uint8 images \(N, H, W, 3\)"):
        extract(encode, images.astype(np.float32))


def test_encoder_from_saved_model_and_its_errors(tmp_path):
    path = save_encoder_module(tmp_path / "good")
    encode = encoder_from_saved_model(path, batch_size=7)
    images = photo_array(20, 16, 0)
    out = encode(images)
    x = images.astype(np.float32) / 255.0
    np.testing.assert_allclose(out["invariant"], 2 * x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(out["equivariant"], 2 * x.max(axis=(1, 2)), rtol=1e-5)
    first = extract(encode, images, cache=tmp_path / "cache")  # keyed by the SavedModel's path and stamp
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    np.testing.assert_allclose(first["embedding"], out["embedding"])

    bad = save_encoder_module(tmp_path / "bad", keys=("embedding", "invariant"))
    with pytest.raises(ValueError, match=rf"{tmp_path / 'bad'}.*lacks the output\(s\) \['equivariant'\]"):
        encoder_from_saved_model(bad)
    with pytest.raises(ValueError, match="no SavedModel at"):
        encoder_from_saved_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="has no signature 'serve'"):
        encoder_from_saved_model(path, signature="serve")


def test_encoder_from_model_wraps_a_pair_model(rng):
    model = make_pair_model(split=(8, 8))
    images = rng.integers(0, 256, (5, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    out = encoder_from_model(model, batch_size=2)(images)
    expected = model.encoder_outputs(images)
    for key in ("embedding", "invariant", "equivariant"):
        np.testing.assert_allclose(out[key], np.asarray(expected[key]), rtol=1e-5, atol=1e-6)
    assert out["invariant"].shape == (5, 8)


# --- the online probe ---------------------------------------------------------------------------
def labelled_batches(num_batches: int, batch: int = 16, classes: int = 4, seed: int = 0) -> tf.data.Dataset:
    """Pairs whose class sets the image's colour (easy to classify), labels int32."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 1, (classes, 3))
    n = num_batches * batch
    labels = rng.integers(0, classes, n).astype(np.int32)
    views = [
        np.clip(colours[labels][:, None, None] + 0.1 * rng.normal(size=(n, TINY_SIZE, TINY_SIZE, 3)), 0, 1)
        for _ in range(2)
    ]
    data = {"views": {"v1": views[0].astype("float32"), "v2": views[1].astype("float32")}, "label": labels}
    return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)


def test_online_linear_probe_learns_and_leaves_the_encoder_alone():
    probe = OnlineLinearProbe(num_classes=4)
    model = make_pair_model(objectives=[probe])
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(labelled_batches(8), epochs=4, verbose=0).history
    assert "online" in history and "online_top1" in history
    assert history["online_top1"][-1] > 0.6, history["online_top1"]
    assert history["online"][-1] < history["online"][0]

    batch = next(iter(labelled_batches(1)))
    with tf.GradientTape() as tape:
        terms = probe(model.pair_outputs(batch, training=True), training=True)
    grads = tape.gradient(terms["total"], model.backbone.trainable_variables + probe.trainable_variables)
    n_backbone = len(model.backbone.trainable_variables)
    assert all(g is None for g in grads[:n_backbone])  # stop-gradient: nothing reaches the encoder
    assert all(g is not None for g in grads[n_backbone:])

    clone = PairModel.from_config(model.get_config())
    assert isinstance(clone.objectives[0], OnlineLinearProbe) and clone.objectives[0].num_classes == 4

    no_labels = {"views": batch["views"]}
    with pytest.raises(ValueError, match="the batch has no 'label'"):
        probe(model.pair_outputs(no_labels), training=False)
    with pytest.raises(ValueError, match="features must be one of"):
        OnlineLinearProbe(4, features="tokens")


# --- docs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["r2", "heads", "classification", "params", "features", "threedie"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"keras_eqssl.probes.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
