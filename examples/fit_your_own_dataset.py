"""Pretrain a keras_eqssl model on your own images with plain Keras `compile` / `fit`.

What it shows: any `tf.data.Dataset` of `{"image": uint8 (H, W, 3)}` elements becomes training
batches with `keras_eqssl.view_batches` (two augmented views of each image, with every sampled
augmentation parameter recorded); a `PairModel` (SimCLR + the cross-attention reconstruction
objective here) trains on them with `model.fit` like any Keras model, and `model(images)` then
gives the features.

    python examples/fit_your_own_dataset.py                   # scikit-image photos, 200 steps
    python examples/fit_your_own_dataset.py --folder=DIR      # your images: DIR/*.jpg or DIR/<class>/*.jpg
    python examples/fit_your_own_dataset.py --tiny            # a tiny network, 3 steps (seconds)
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
import tensorflow as tf

import keras_eqssl as eq


def images_dataset(folder: str | None, size: int) -> tf.data.Dataset:
    """Your images as `{"image": uint8 (size, size, 3)}`; without a folder, crops of scikit-image's photos."""
    if folder:
        return eq.data.image_folder(folder, image_size=size)
    return eq.skimage_photos(image_size=size, num_images=512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", help="a folder of images (any layout image_folder reads)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tiny", action="store_true", help="a tiny network and 3 steps")
    args = parser.parse_args()
    size, width, batch, steps = (16, 0.0625, 8, 3) if args.tiny else (32, 0.25, 64, args.steps)
    keras.utils.set_random_seed(0)

    # 1. Batches: {"views": {"v1", "v2": (B, S, S, 3)}, "params": {...}} from any image dataset.
    images = images_dataset(args.folder, size).repeat().shuffle(256, seed=0)
    batches = eq.view_batches(images, eq.simclr(size), batch_size=batch, seed=0)

    # 2. A model: SimCLR on the first half of the channels, reconstruction on the second half.
    backbone = eq.backbone_from_name("resnet18", stem="cifar", width=width)
    half = backbone.feature_dim // 2
    model = eq.PairModel(
        backbone,
        invariance=eq.SimCLR(projector_units=[4 * half, half]),
        objectives=[eq.CrossAttentionReconstruction(decoder_dim=half, decoder_filters=half // 2)],
        split=(half, half),
        image_size=size,
    )

    # 3. Keras as usual: compile, fit (every loss term is a metric), save.
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = model.fit(batches, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0 if args.tiny else "auto")
    print("losses after the last step:", {k: round(v[-1], 4) for k, v in history.history.items()})

    # 4. The features: the backbone only, no heads.
    sample = next(iter(images.batch(4)))["image"].numpy()
    features = model(sample)
    print("features:", {k: tuple(v.shape) for k, v in features.items()})
    assert np.all(np.isfinite(features["embedding"]))


if __name__ == "__main__":
    main()
