"""Features from a keras_eqssl encoder for a scikit-learn classifier.

What it shows: `keras_eqssl.feature_model(source)` turns a trained model (a workdir, a
checkpoint or a `model.keras`) into a Keras model from [0, 1] images to its pooled feature
vector; its `predict` gives a NumPy array that any scikit-learn estimator takes. Here a logistic
regression learns which of scikit-image's 16 photos a crop comes from, and is scored on other
crops. (An exported SavedModel gives the same features: `keras_eqssl.load_encoder(DIR)(images)`.)

    python examples/sklearn_features.py --model=runs/default      # your trained encoder
    python examples/sklearn_features.py                            # an untrained network, for comparison
    python examples/sklearn_features.py --tiny                     # a tiny untrained network (seconds)
"""

from __future__ import annotations

import argparse

import numpy as np
from labelled_photos import labelled_photos
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import keras_eqssl as eq


def untrained_model(size: int, width: float):
    """A PairModel at initialisation: what the features are worth before any training."""
    backbone = eq.backbone_from_name("resnet18", stem="cifar", width=width)
    return eq.PairModel(backbone, eq.SimCLR(projector_units=[32, 16]), image_size=size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a training workdir, checkpoint or model.keras (default: untrained)")
    parser.add_argument("--tiny", action="store_true", help="a tiny network and 160 images per split")
    args = parser.parse_args()
    size, width, n = (16, 0.0625, 160) if args.tiny else (32, 0.25, 1600)

    features = eq.feature_model(args.model or untrained_model(size, width))  # images in [0, 1] -> (N, D)
    size = features.input_shape[1]  # a trained model's own image size
    (x_train, y_train), (x_test, y_test) = (labelled_photos(n, size, seed) for seed in (0, 1))
    f_train = features.predict(x_train / np.float32(255), verbose=0)
    f_test = features.predict(x_test / np.float32(255), verbose=0)
    print("features:", f_train.shape, f_test.shape)

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(f_train, y_train)
    accuracy = classifier.score(f_test, y_test)
    print(f"logistic regression top-1: {accuracy:.3f} (chance {1 / len(np.unique(y_train)):.3f})")


if __name__ == "__main__":
    main()
