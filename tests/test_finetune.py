"""Fine-tuning: `feature_model` / `classifier` (keras_eqssl.export.finetune) and the low-label
evaluation (keras_eqssl.probes.low_label)."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
from method_helpers import TINY_SIZE, make_pair_model

from keras_eqssl.export import classifier, feature_model
from keras_eqssl.probes.low_label import (
    LowLabelScore,
    balanced_subset,
    finetuner,
    low_label_probe,
    low_label_scores,
    low_label_table,
)


def _images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, TINY_SIZE, TINY_SIZE, 3)).astype(np.float32)


def _moving_means(model) -> np.ndarray:
    return np.concatenate([w.numpy().ravel() for w in model.backbone.weights if "moving_mean" in w.path])


@pytest.fixture(scope="module")
def ssl_model():
    keras.utils.set_random_seed(0)
    model = make_pair_model("vicreg", split=(8, 8), mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    model(_images(2))
    return model


def test_feature_model_gives_what_the_model_gives_and_trains_its_backbone(ssl_model):
    x = _images()
    for output in ("embedding", "invariant", "equivariant"):
        features = feature_model(ssl_model, output=output)
        np.testing.assert_allclose(features(x).numpy(), ssl_model(x)[output].numpy(), atol=1e-5)
    assert features.output_shape == (None, 8) and features.input_shape == (None, TINY_SIZE, TINY_SIZE, 3)
    backbone_ids = {id(w) for w in ssl_model.backbone.trainable_weights}
    assert features.trainable and {id(w) for w in features.trainable_weights} == backbone_ids  # shared, not copied
    with pytest.raises(ValueError, match="output must be one of"):
        feature_model(ssl_model, output="pooled")
    with pytest.raises(ValueError, match="batch_norm must be one of"):
        feature_model(ssl_model, batch_norm="frozen")
    with pytest.raises(TypeError, match="needs a keras_eqssl model"):
        feature_model(keras.Sequential([keras.layers.Dense(2)]))


@pytest.mark.parametrize("batch_norm", ["inference", pytest.param("train", marks=pytest.mark.slow)])
def test_fit_updates_the_backbone_and_batch_norm_statistics_only_in_train_mode(batch_norm):
    keras.utils.set_random_seed(1)
    ssl = make_pair_model("vicreg", split=(8, 8))
    model = classifier(feature_model(ssl, batch_norm=batch_norm), num_classes=3)
    kernel = ssl.backbone.trainable_weights[0]
    kernel_before, moving_before = kernel.numpy().copy(), _moving_means(ssl)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_images(6), np.arange(6) % 3, batch_size=6, epochs=1, verbose=0)
    assert not np.allclose(kernel.numpy(), kernel_before)  # the backbone fine-tunes in both modes
    moved = np.abs(_moving_means(ssl) - moving_before).max()
    assert (moved == 0.0) if batch_norm == "inference" else (moved > 1e-4)


def test_feature_model_loads_a_checkpoint_a_workdir_and_saves(ssl_model, tmp_path):
    x = _images()
    expected = ssl_model(x)["embedding"].numpy()
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    ssl_model.save(tmp_path / "run" / "checkpoints" / "ckpt-00000002.keras")
    for source in (tmp_path / "run" / "checkpoints" / "ckpt-00000002.keras", str(tmp_path / "run")):
        features = feature_model(source)
        np.testing.assert_allclose(features(x).numpy(), expected, atol=1e-5)
    features.save(tmp_path / "features.keras")
    loaded = keras.models.load_model(tmp_path / "features.keras")
    np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-5)
    assert len(loaded.trainable_weights) == len(ssl_model.backbone.trainable_weights)
    with pytest.raises(FileNotFoundError):
        feature_model(tmp_path / "missing")


def test_classifier_heads_and_freezing(ssl_model):
    features = feature_model(ssl_model)
    model = classifier(features, num_classes=4, dropout=0.1)
    assert model(_images(3)).shape == (3, 4)
    head = len(model.trainable_weights) - len(features.trainable_weights)
    features.trainable = False
    assert len(model.trainable_weights) == head == 2  # the Dense kernel and bias
    features.trainable = True
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        classifier(features, num_classes=1)
    with pytest.raises(ValueError, match="dropout"):
        classifier(features, num_classes=2, dropout=1.0)


def test_balanced_subset_draws_the_fraction_of_each_class():
    labels = np.repeat([0, 1, 2, 3], [200, 100, 30, 3])
    rows = balanced_subset(labels, 0.1, seed=0)
    assert np.bincount(labels[rows]).tolist() == [20, 10, 3, 1]  # at least one per class
    assert len(np.unique(rows)) == len(rows) and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, balanced_subset(labels, 0.1, seed=0))
    assert not np.array_equal(rows, balanced_subset(labels, 0.1, seed=1))
    assert len(balanced_subset(labels, 1.0, seed=0)) == len(labels)
    with pytest.raises(ValueError, match="fraction must be in"):
        balanced_subset(labels, 0.0, seed=0)


def _blobs(n_per_class: int, classes: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    return rng.normal(size=(classes, 16))[y] + noise * rng.normal(size=(len(y), 16)), y


def test_low_label_scores_beat_the_constant_where_the_classes_separate():
    x, y = _blobs(200, 5, noise=0.5)
    calls = []

    def fit_predict(images, labels, test_images, seed):
        calls.append((len(images), seed, len(test_images)))
        return np.full(len(test_images), labels[0])

    scores = low_label_scores(
        x[::2], y[::2], x[1::2], y[1::2], seeds=(0, 1, 2), fit_predict=fit_predict,
        train_images=np.zeros((500, 2, 2, 3)), test_images=np.zeros((500, 2, 2, 3)),
    )  # fmt: skip
    by = {(s.method, s.fraction): s for s in scores}
    assert [(s.method, s.fraction) for s in scores] == [
        (m, f) for f in (0.01, 0.1) for m in ("constant", "linear", "finetune")
    ]
    assert {s.labels for s in scores if s.fraction == 0.01} == {5} and by["linear", 0.1].labels == 50
    assert all(len(s.values) == 3 for s in scores)
    assert by["linear", 0.01].mean > 0.6 and by["linear", 0.1].mean > 0.9
    assert by["constant", 0.1].mean == pytest.approx(0.2)
    assert calls == [(n, seed, 500) for n in (5, 50) for seed in (0, 1, 2)]
    table = low_label_table(scores)
    assert "| 1% labels (5) | 10% labels (50) |" in table and table.count("\n") == 4
    assert f"| linear | {by['linear', 0.01].text()} | {by['linear', 0.1].text()} |" in table


def test_low_label_scores_at_chance_where_the_labels_are_noise():
    x, _ = _blobs(200, 5, noise=0.5)
    y = np.random.default_rng(1).integers(0, 5, len(x))
    scores = low_label_scores(x[::2], y[::2], x[1::2], y[1::2], fractions=(0.1,), seeds=(0, 1))
    assert all(abs(s.mean - 0.2) < 0.1 for s in scores)
    with pytest.raises(ValueError, match="fit_predict needs train_images"):
        low_label_scores(x, y, x, y, fit_predict=lambda *a: None)
    with pytest.raises(ValueError, match="fraction must be in"):
        low_label_scores(x, y, x, y, fractions=(10,))


def test_low_label_score_text():
    score = LowLabelScore("linear", 0.1, (0.5, 0.7), 20)
    assert (score.mean, score.text(2)) == (pytest.approx(0.6), "0.60 ± 0.14")


@pytest.mark.slow  # two tiny fine-tuning runs per fraction
def test_low_label_probe_fine_tunes_a_checkpoint(ssl_model, tmp_path):
    ssl_model.save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    images = np.zeros((40, TINY_SIZE, TINY_SIZE, 3), np.uint8)
    images[y == 1] = 255  # black vs white: separable by any encoder
    images = np.clip(images.astype(int) + rng.integers(-20, 21, images.shape), 0, 255).astype(np.uint8)
    fit = finetuner(tmp_path / "model.keras", epochs=2, head_epochs=15, head_learning_rate=0.05, learning_rate=1e-3)

    def encode(x):
        return {"embedding": feature_model(ssl_model)(x.astype(np.float32) / 255.0).numpy()}

    scores = low_label_probe(
        encode, (images[::2], y[::2]), (images[1::2], y[1::2]), fractions=(0.5,), seeds=(0, 1), fit_predict=fit
    )
    by = {s.method: s for s in scores}
    assert by["linear"].mean > 0.9 and by["finetune"].mean > 0.9 and by["constant"].mean == 0.5


@pytest.mark.slow  # a fresh process
def test_a_saved_classifier_loads_in_a_fresh_process(ssl_model, tmp_path):
    classifier(feature_model(ssl_model), num_classes=3).save(tmp_path / "classifier.keras")
    code = (
        "import sys, keras, keras_eqssl.export.finetune; "
        "m = keras.models.load_model(sys.argv[1]); print(m.output_shape, len(m.trainable_weights))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "classifier.keras")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == f"(None, 3) {len(ssl_model.backbone.trainable_weights) + 2}"
