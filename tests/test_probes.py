"""Probes: R², ridge / MLP heads, repeats, feature extraction and cache, the parameter and
3DIEBench probes, classification, a loaded encoder as the probes' encoder."""

from __future__ import annotations

import pathlib

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

from keras_eqssl.export import load_encoder
from keras_eqssl.probes import (
    FAMILIES,
    PARTS,
    classification_probe,
    compare,
    encoder_from_model,
    extract,
    extract_param_features,
    family_ops,
    fit_ridge,
    knn_top1,
    linear_top1,
    one,
    param_probe,
    pick,
    r2_global_mean,
    r2_mean,
    r2_per_dim,
    threedie_probe,
    train_mlp,
)
from keras_eqssl.probes.heads import validation_split
from keras_eqssl.probes.linear import ALPHAS
from keras_eqssl.probes.repeats import bootstrap_groups
from keras_eqssl.probes.threedie import object_pairs


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
def test_ridge_recovers_a_target_contained_in_the_features(rng):
    target = rng.normal(size=(1200, 3)) * [1.0, 10.0, 0.1]
    x = np.concatenate([target, rng.normal(size=(1200, 13))], axis=1)  # features = [target, noise]
    groups = np.arange(1200) // 4
    head = fit_ridge(x[:1000], target[:1000], groups[:1000])
    scores = r2_per_dim(target[1000:], head.predict(x[1000:]))
    assert scores.min() > 0.99, scores


def test_ridge_on_random_features_scores_near_zero_held_out(rng):
    # 2,000 train rows of 128 random features: a least-squares fit would score about -0.07 held out;
    # the penalty chosen by grouped cross-validation shrinks it to the constant predictor.
    x = rng.normal(size=(2600, 128))
    y = rng.normal(size=(2600, 2))
    groups = np.arange(2600) // 8
    head = fit_ridge(x[:2000], y[:2000], groups[:2000])
    r2 = r2_mean(y[2000:], head.predict(x[2000:]))
    assert -0.05 <= r2 <= 0.05, r2
    plain = np.linalg.lstsq(np.c_[x[:2000], np.ones(2000)], y[:2000], rcond=None)[0]
    assert r2_mean(y[2000:], np.c_[x[2000:], np.ones(600)] @ plain) < r2  # unregularised is worse


@pytest.mark.parametrize("rows, features", [(600, 20), (120, 300)])  # the Gram and the kernel form
def test_ridge_equals_sklearns_grid_search_over_a_pipeline(rng, rows, features):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x = rng.normal(size=(rows, features)) * rng.uniform(0.1, 10, features) + 3.0
    y = x[:, :2] @ rng.normal(size=(2, 2)) + 5 * rng.normal(size=(rows, 2))
    groups = np.arange(rows) // 6
    ours = fit_ridge(x, y, groups)
    pipe = Pipeline([("scale", StandardScaler()), ("ridge", Ridge())])
    theirs = GridSearchCV(pipe, {"ridge__alpha": list(ALPHAS)}, cv=GroupKFold(5), scoring="r2").fit(x, y, groups=groups)
    assert ours.alpha == theirs.best_params_["ridge__alpha"]
    np.testing.assert_allclose(ours.cv_scores, theirs.cv_results_["mean_test_score"], atol=1e-10)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), atol=1e-8)


def test_ridge_falls_back_to_the_constant_when_nothing_generalises_across_groups(rng):
    from keras_eqssl.probes.r2 import r2_mean

    # Noise features and a noise target; a grid with only a tiny penalty overfits every fold, so
    # cross-validation must prefer the train mean (the constant predictor) to any penalty.
    x, y = rng.normal(size=(300, 150)), rng.normal(size=300)
    groups = np.arange(300) // 10
    train, test = groups < 24, groups >= 24
    fitted = fit_ridge(x[train], y[train], groups[train], alphas=(1e-3,))
    assert fitted.alpha == np.inf and np.all(fitted.coef == 0)
    held_out = r2_mean(y[test, None], fitted.predict(x[test]))
    assert -0.1 < held_out <= 0.0  # the train mean on new groups
    forced = fit_ridge(x[train], y[train], groups[train], alphas=(1e-3,), constant_candidate=False)
    assert forced.alpha == 1e-3 and r2_mean(y[test, None], forced.predict(x[test])) < -0.5  # what it saves us from


def test_grouped_cross_validation_does_not_reward_memorising_groups(rng):
    # Each group has its own random target and its own feature signature: a small penalty fits the
    # training groups perfectly but says nothing about new groups. Ungrouped folds would pick it.
    signatures = rng.normal(size=(100, 64))
    group_target = rng.normal(size=100)
    groups = np.repeat(np.arange(100), 10)
    x = signatures[groups] + 0.01 * rng.normal(size=(1000, 64))
    y = group_target[groups]
    grouped = fit_ridge(x[:800], y[:800], groups[:800])
    leaky = fit_ridge(x[:800], y[:800], np.arange(800))  # every row its own group
    assert grouped.alpha > leaky.alpha
    assert r2_mean(y[800:], grouped.predict(x[800:])) > r2_mean(y[800:], leaky.predict(x[800:]))


def test_mlp_stops_early_and_restores_its_best_weights(rng):
    x = rng.normal(size=(600, 32)).astype("float32")
    y = (x[:, 0] + rng.normal(size=600)).astype("float32")  # noisy: a wide MLP overfits quickly
    groups = np.arange(600) // 3
    head = train_mlp(x, y, groups, hidden_units=(256, 256), epochs=300, patience=5, learning_rate=3e-3, seed=0)
    val_loss = head.history["val_loss"]
    assert head.stopped_epoch < 299  # stopped early
    assert head.best_epoch == int(np.argmin(val_loss)) < head.stopped_epoch
    assert val_loss[-1] > min(val_loss)  # the last epoch was worse than the best ...
    _, val_rows = validation_split(groups, 0.2, 0)
    restored = np.mean(((head.predict(x[val_rows])[:, 0] - y[val_rows]) / head.y_std[0]) ** 2)
    np.testing.assert_allclose(restored, min(val_loss), rtol=1e-4)  # ... and its weights were restored
    train_groups, val_groups = set(groups[np.setdiff1d(np.arange(600), val_rows)]), set(groups[val_rows])
    assert not train_groups & val_groups  # held out by group
    again = train_mlp(x, y, groups, hidden_units=(256, 256), epochs=300, patience=5, learning_rate=3e-3, seed=0)
    np.testing.assert_allclose(again.predict(x[:50]), head.predict(x[:50]), rtol=1e-5, atol=1e-6)


def test_heads_errors(rng):
    x = rng.normal(size=(40, 4))
    with pytest.raises(ValueError, match="task must be one of"):
        train_mlp(x, x[:, 0], np.arange(40), task="ranking")
    with pytest.raises(ValueError, match="at least 2 groups"):
        fit_ridge(x, x[:, 0], np.zeros(40))
    with pytest.raises(ValueError, match="features contain NaN"):
        fit_ridge(np.full((40, 4), np.nan), x[:, 0], np.arange(40))
    with pytest.raises(ValueError, match=r"Unknown probe heads \['deep'\]"):
        param_probe(split_encode, photo_array(64, 16, 3), np.arange(64) % 16, heads=["deep"])


def test_bootstrap_and_pairs(rng):
    groups = np.repeat(np.arange(5), 3)
    rows = bootstrap_groups(groups, seed=1)
    assert len(rows) == 15 and all(np.sum(groups[rows] == g) % 3 == 0 for g in range(5))  # whole groups
    assert not np.array_equal(rows, bootstrap_groups(groups, seed=2))
    i, j = object_pairs(np.array([0, 0, 0, 1, 1, 1, 1]), None, 0)
    assert len(i) == 3 * 2 + 4 * 3 and np.all(i != j)
    assert set(zip(i.tolist(), j.tolist())) >= {(0, 1), (1, 0), (3, 6)}
    i, j = object_pairs(np.array([0, 0, 0, 1, 1, 1, 1]), 2, 0)
    assert len(i) == 4 and np.all(np.array([0, 0, 0, 1, 1, 1, 1])[i] == np.array([0, 0, 0, 1, 1, 1, 1])[j])


# --- the augmentation-parameter probe ------------------------------------------------------------
def test_param_probe_trained_encoder_beats_random_on_rotation():
    images = photo_array(512, 32, 0)
    photos = np.arange(512) % 16  # skimage_photos: label = photo index
    options = dict(families=["rotation"], parts=["embedding"], heads=["linear"], seed=0)
    random = param_probe(encoder_from_model(conv_encoder(seed=0)), images, photos, **options)
    trained = param_probe(encoder_from_model(rotation_trained_encoder()), images, photos, **options)
    pick_r2 = dict(probe="params", target="rotation", part="embedding", metric="r2")
    r_random, r_trained = one(random, head="linear", **pick_r2), one(trained, head="linear", **pick_r2)
    constant = one(random, head="constant", **pick_r2)
    # Random pooled conv features hardly tell the angle; training makes it explicit.
    assert r_random.mean < 0.3, r_random
    assert r_trained.mean > 0.5 and compare(r_trained, r_random).beyond_noise, (r_random, r_trained)
    assert constant.mean < 0.0 and constant.mean > -0.1  # the train mean scores just below 0 on new photos
    assert len(r_trained.values) == 3 and r_trained.std > 0  # 3 real repeats: different held-out photos


def test_param_probe_families_parts_and_constant_rows():
    images = photo_array(96, 16, 3)
    photos = np.arange(96) % 16
    scores = param_probe(split_encode, images, photos, parts=["invariant", "equivariant"], repeats=2, batch_size=32)
    names = {
        "rotation": ["rotation"],
        "color": ["brightness", "contrast", "saturation", "hue"],
        "blur": ["blur"],
        "translation": ["tx", "ty"],
        "all": ["brightness", "contrast", "saturation", "hue", "blur", "rotation", "tx", "ty"],
    }
    for family, params in names.items():
        for part in ("invariant", "equivariant"):
            for head in ("constant", "linear"):
                whole = one(scores, target=family, part=part, head=head, metric="r2")
                assert len(whole.values) == 2 and np.all(np.isfinite(whole.values))
                dims = [s.dim for s in pick(scores, target=family, part=part, head=head, metric="r2", dim=None)]
                assert dims == ["", *params]
    assert {s.part for s in scores} == {"invariant", "equivariant"}
    again = param_probe(split_encode, images, photos, parts=["invariant", "equivariant"], repeats=2, batch_size=32)
    assert again == scores  # deterministic for a seed


def test_param_probe_holds_out_whole_groups(monkeypatch):
    import keras_eqssl.probes.repeats as repeats

    seen = []
    real = repeats.fit_regressors

    def spy(x, y, groups, heads, **kwargs):
        seen.append(set(np.unique(groups).tolist()))
        return real(x, y, groups, heads, **kwargs)

    monkeypatch.setattr("keras_eqssl.probes.params.fit_regressors", spy)
    images = photo_array(64, 16, 3)
    photos = np.arange(64) % 16
    param_probe(split_encode, images, photos, families=["rotation"], parts=["embedding"], repeats=3)
    assert len(seen) == 3 and all(len(s) == 12 for s in seen)  # 25% of 16 photos held out
    assert len({frozenset(s) for s in seen}) > 1  # each repeat holds out other photos


def test_param_probe_with_fixed_test_groups_fits_once_and_bootstraps_them(monkeypatch):
    import keras_eqssl.probes.repeats as repeats
    from keras_eqssl.probes.params import param_scores

    seen = []
    real = repeats.fit_regressors

    def spy(x, y, groups, heads, **kwargs):
        seen.append(set(np.unique(groups).tolist()))
        return real(x, y, groups, heads, **kwargs)

    monkeypatch.setattr("keras_eqssl.probes.params.fit_regressors", spy)
    images = photo_array(96, 16, 3)
    photos = np.arange(96) % 16
    feats = extract_param_features(split_encode, images, ["rotation"], parts=["embedding"])
    scores = param_scores(feats, photos, parts=["embedding"], repeats=4, test_groups=[12, 13, 14, 15])
    assert seen == [set(range(12))]  # one fit, on the other photos only
    score = one(scores, target="rotation", part="embedding", head="linear", metric="r2")
    assert len(score.values) == 4 and len(set(score.values)) > 1  # four different bootstraps of the held-out photos
    with pytest.raises(ValueError, match="must hold out some groups and leave others"):
        param_scores(feats, photos, parts=["embedding"], test_groups=list(range(16)))
    with pytest.raises(ValueError, match="must hold out some groups and leave others"):
        param_scores(feats, photos, parts=["embedding"], test_groups=[99])


def test_param_probe_with_fixed_test_groups_reads_a_target_the_features_contain():
    from keras_eqssl.probes.params import param_scores

    images = photo_array(400, 16, 3)
    photos = np.arange(400) % 16
    feats = extract_param_features(split_encode, images, ["rotation"], parts=["embedding"])
    fam = feats["families"]["rotation"]  # the transformed copies' features get the angle as one more column
    angle = fam["targets"]
    fam["features"]["embedding"] = np.concatenate([fam["features"]["embedding"], angle], axis=1)
    feats["original"]["embedding"] = np.concatenate([feats["original"]["embedding"], np.zeros_like(angle)], axis=1)
    scores = param_scores(feats, photos, parts=["embedding"], repeats=3, test_groups=[0, 5, 10, 15])
    assert one(scores, target="rotation", head="linear", metric="r2").mean > 0.99
    assert abs(one(scores, target="rotation", head="constant", metric="r2").mean) < 0.1


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
    photos = np.arange(64) % 16
    with pytest.raises(ValueError, match=r"Unknown parameter family \['scale'\]; known: \[.*'rotation'.*\]"):
        param_probe(split_encode, images, photos, families=["rotation", "scale"])
    with pytest.raises(ValueError, match=r"Unknown parameter family 'scale'; known: \['rotation', 'color'"):
        family_ops("scale")
    with pytest.raises(ValueError, match=r"Unknown part \['pooled'\]; known"):
        param_probe(split_encode, images, photos, parts=["pooled"])
    with pytest.raises(ValueError, match=r"groups must be \(64,\)"):
        param_probe(split_encode, images, photos[:10], families=["blur"])
    with pytest.raises(ValueError, match="at least 3 groups"):
        param_probe(split_encode, images, np.arange(64) % 2, families=["blur"])
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


def test_linear_top1_separable_and_random(rng):
    y = rng.integers(0, 4, 400)
    x = 3.0 * rng.normal(size=(4, 8))[y] + rng.normal(size=(400, 8))
    assert linear_top1(x[:300], y[:300], x[300:], y[300:]) > 0.95
    noise = rng.normal(size=(1500, 64))
    labels = rng.integers(0, 4, 1500)
    assert abs(linear_top1(noise[:1000], labels[:1000], noise[1000:], labels[1000:]) - 0.25) < 0.07


def test_classification_probe_on_photos_with_constant_row_and_repeats():
    images = photo_array(160, 16, 0)
    labels = np.arange(160) % 16  # skimage_photos: label = photo index = i % 16
    scores, skipped = classification_probe(split_encode, (images[:128], labels[:128]), (images[128:], labels[128:]))
    assert skipped == []
    assert {(s.part, s.head) for s in scores} == {(p, h) for p in PARTS for h in ("constant", "linear", "knn")}
    knn = one(scores, part="embedding", head="knn")
    assert knn.mean > 0.3 and len(knn.values) == 3 and knn.std > 0  # colour statistics tell the photos apart
    assert one(scores, part="embedding", head="constant").mean < 0.15  # 16 balanced classes: ~1/16


def test_classification_probe_skips_one_class_with_the_reason():
    images = photo_array(12, 16, 0)
    scores, skipped = classification_probe(split_encode, (images[:6], np.zeros(6, int)), (images[6:], np.zeros(6, int)))
    assert scores == [] and "1 class" in skipped[0]


# --- 3DIEBench ----------------------------------------------------------------------------------
def test_threedie_probe_scores_every_part_head_and_component(tmp_path):
    root = write_threedie(tmp_path / "3die", num_train=6, num_val=3, num_views=5, size=32)
    scores = threedie_probe(split_encode, root, pairs_per_object=8, batch_size=16, repeats=2)
    for part in PARTS:
        for head in ("constant", "linear"):
            rotation = pick(scores, target="rotation", part=part, head=head, metric="r2", dim=None)
            assert [s.dim for s in rotation] == ["", "qx", "qy", "qz", "qw"]
            color = pick(scores, target="color", part=part, head=head, metric="r2", dim=None)
            assert [s.dim for s in color] == ["", "floor_hue", "light_hue"]
            for target in ("rotation", "color"):
                assert np.all(np.isfinite(one(scores, target=target, part=part, head=head, metric="r2_global").values))
    assert all(len(s.values) == 2 for s in scores)
    with pytest.raises(ValueError, match=r"Unknown 3DIEBench target \['pose'\]; known: \['color', 'rotation'\]"):
        threedie_probe(split_encode, root, targets=["pose"])


def test_evaluate_models_on_renders_writes_the_report_and_reuses_the_features(tmp_path):
    from keras_eqssl.probes.evaluate import EvalData, evaluate_encoder, evaluate_models, load_views

    root = write_threedie(tmp_path / "3die", num_train=6, num_val=4, num_views=4, size=32)
    model = save_encoder_module(tmp_path / "encoder")
    data = EvalData(threedie_root=root, families=("rotation",), repeats=2, pairs_per_object=6)
    out = evaluate_models({"a": model}, data, tmp_path / "report", baseline=None)
    md = pathlib.Path(out["paths"]["report"]).read_text()
    assert "## Equivariant vs invariant part" in md and (tmp_path / "report" / "map_a.png").exists()
    assert set(out["key_numbers"]["a"]) >= {"3DIE colour R²", "params rotation R² (equi)", "linear top-1"}
    features: dict = {}
    views = load_views(data)
    again = evaluate_encoder(load_encoder(model), data, views=views, features=features)
    assert again.scores == out["results"]["a"].scores  # same seed, same figures
    direct = load_encoder(model)(views["val"]["images"])
    np.testing.assert_allclose(features["val"]["equivariant"], direct["equivariant"], rtol=1e-6)


def test_threedie_views_and_relative_targets_match_the_pair_reader(tmp_path):
    from keras_eqssl.data.threedie import threedie_pairs
    from keras_eqssl.data.threedie_views import relative_targets, threedie_views

    root = write_threedie(tmp_path / "3die", num_train=4, num_val=2, num_views=3, size=32)
    views = threedie_views(root, "train")
    assert views["images"].shape == (12, 32, 32, 3) and views["object"].tolist() == np.repeat(np.arange(4), 3).tolist()
    pair = next(iter(threedie_pairs(root, "train", seed=0, shuffle=False)))
    first = int(np.flatnonzero(np.all(views["latents"] == pair["latent"]["v1"].numpy(), axis=1))[0])
    second = int(np.flatnonzero(np.all(views["latents"] == pair["latent"]["v2"].numpy(), axis=1))[0])
    np.testing.assert_array_equal(views["images"][first], pair["views"]["v1"].numpy())
    targets = relative_targets(views["latents"][[first]], views["latents"][[second]])
    np.testing.assert_allclose(targets["rel_rotation"][0], pair["rel_rotation"].numpy(), atol=1e-5)
    np.testing.assert_allclose(targets["rel_color"][0], pair["rel_color"].numpy(), atol=1e-6)


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


def test_a_loaded_encoder_is_a_probe_encoder_and_its_errors(tmp_path):
    path = save_encoder_module(tmp_path / "good")
    encode = load_encoder(path, batch_size=7)
    images = photo_array(20, 16, 0)
    out = encode(images)
    x = images.astype(np.float32) / 255.0
    np.testing.assert_allclose(out["invariant"], 2 * x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(out["equivariant"], 2 * x.max(axis=(1, 2)), rtol=1e-5)
    first = extract(encode, images, cache=tmp_path / "cache")  # keyed by the SavedModel's path and stamp
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    np.testing.assert_allclose(first["embedding"], out["embedding"])
    assert encode.cache_key.startswith(f"savedmodel:{tmp_path / 'good'}@") and encode.batch_size == 7

    bad = save_encoder_module(tmp_path / "bad", keys=("embedding", "invariant"))
    with pytest.raises(ValueError, match=rf"{tmp_path / 'bad'} is not an encoder export.*lack \['equivariant'\]"):
        load_encoder(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(tmp_path / "missing")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        load_encoder(path, batch_size=0)


def test_encoder_from_model_wraps_a_pair_model(rng):
    model = make_pair_model(split=(8, 8))
    images = rng.integers(0, 256, (5, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    out = encoder_from_model(model, batch_size=2)(images)
    expected = model.encoder_outputs(images)
    for key in ("embedding", "invariant", "equivariant"):
        np.testing.assert_allclose(out[key], np.asarray(expected[key]), rtol=1e-5, atol=1e-6)
    assert out["invariant"].shape == (5, 8)
