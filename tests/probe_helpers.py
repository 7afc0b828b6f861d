"""Shared pieces of the probe tests: tiny encoders, photo batches, a SavedModel with the export signature.

- `photo_array(n, size, seed)`: `skimage_photos` crops as one uint8 array (cached).
- `conv_encoder(seed, size)`: a tiny conv net (3 stride-2 convs, global average pooling, Dense 32),
  random weights; wrap it with `encoder_from_model`.
- `rotation_trained_encoder(size, seed)`: the same net trained briefly (~290 Adam steps on CPU) to
  regress the rotation angle between a photo and its rotated copy from `[f(I), f(g(I))]`.
- `split_encode(images)`: a NumPy encoder with a split: channel means / stds (invariant-ish) and
  a coarse 2x2 grid of means (equivariant-ish).
- `save_encoder_module(path, outputs)`: a SavedModel whose `serving_default(images=uint8)` returns
  `outputs` (default the three export keys), as `keras_eqssl.export` wrote them in format 1
  (format 2's `serving_default` takes [0, 1] floats, and `serving_uint8` uint8).
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from keras_eqssl.augment import Rotation


@functools.cache
def photo_array(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 crops of the scikit-image photos."""
    from keras_eqssl.data.photos import skimage_photos

    return np.stack([e["image"] for e in skimage_photos(size, n, seed).as_numpy_iterator()])


def conv_encoder(seed: int = 0, size: int = 32) -> keras.Model:
    """A tiny conv net with seeded random weights: (N, S, S, 3) float in [0, 1] -> (N, 32)."""
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)
    inputs = keras.Input((size, size, 3))
    x = inputs
    for i, filters in enumerate((16, 32, 32)):
        x = keras.layers.Conv2D(filters, 3, 2, "same", activation="relu", kernel_initializer=init(i))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(32, kernel_initializer=init(9))(x)
    return keras.Model(inputs, outputs, name=f"conv_encoder_{seed}")


def rotation_trained_encoder(size: int = 32, seed: int = 1, copies: int = 3, epochs: int = 6) -> keras.Model:
    """`conv_encoder(seed)` trained end to end to regress the angle of `Rotation(45)` from a pair.

    Trains on photo crops drawn with another seed than the probe's (`photo_array(1024, size, 1)`),
    `copies` rotated copies each, batch 64, Adam 2e-3: 1024 * 3 / 64 * 6 = 288 steps.
    """
    keras.utils.set_random_seed(seed)
    encoder = conv_encoder(seed, size)
    a, b = keras.Input((size, size, 3)), keras.Input((size, size, 3))
    h = keras.layers.Concatenate()([encoder(a), encoder(b)])
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model([a, b], keras.layers.Dense(1)(h))
    model.compile(keras.optimizers.Adam(2e-3), "mse")
    images = tf.cast(np.concatenate([photo_array(1024, size, 1)] * copies), tf.float32) / 255.0
    rotation = Rotation(45.0)
    params = rotation.sample(len(images), seed=123)
    rotated = tf.round(rotation.apply(images, params) * 255.0) / 255.0  # as the probe sees it: uint8
    model.fit([images, rotated], params["rotation"] / 45.0, batch_size=64, epochs=epochs, verbose=0)
    return encoder


def split_encode(images: np.ndarray) -> dict[str, np.ndarray]:
    """A NumPy encoder: invariant = channel means and stds (6), equivariant = 2x2 grid means (12)."""
    x = images.astype(np.float32) / 255.0
    n, h, w, _ = x.shape
    inv = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)
    grid = x.reshape(n, 2, h // 2, 2, w // 2, 3).mean(axis=(2, 4)).reshape(n, 12)
    return {"embedding": np.concatenate([inv, grid], axis=1), "invariant": inv, "equivariant": grid}


class _EncoderModule(tf.Module):
    def __init__(self, keys):
        super().__init__()
        self.keys = tuple(keys)
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images):
        x = tf.cast(images, tf.float32) / 255.0
        pooled = tf.concat([tf.reduce_mean(x, axis=[1, 2]), tf.reduce_max(x, axis=[1, 2])], axis=1) * self.scale
        parts = {"embedding": pooled, "invariant": pooled[:, :3], "equivariant": pooled[:, 3:]}
        return {k: parts[k] for k in self.keys}


def save_encoder_module(path, keys=("embedding", "invariant", "equivariant")) -> str:
    """Saves a SavedModel with `serving_default(images=uint8 (N, H, W, 3)) -> {key: (N, C)}` and returns the path.

    embedding = 2 * [channel means, channel maxima] of the [0, 1] image; invariant = its first 3
    values, equivariant = the last 3.
    """
    module = _EncoderModule(keys)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)
