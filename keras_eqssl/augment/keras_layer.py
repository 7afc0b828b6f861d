"""Any augmentation op as a Keras 3 image preprocessing layer that still hands back what it sampled."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)

from keras_eqssl.augment import base
from keras_eqssl.augment.images import to_float_rgb


@keras.saving.register_keras_serializable(package="keras_eqssl")
class OpLayer(BaseImagePreprocessingLayer):
    """Wraps an op (`Flip`, `Rotation`, `RandomResizedCrop`, `Compose`, `AugMix`, ...) as a Keras layer.

    Follows the convention of Keras' image preprocessing layers: `get_random_transformation`
    samples and returns the op's parameter dict (the keys of `op.param_specs()`, each `(B, ...)`),
    `transform_images` applies such a dict with `op.apply`. So the layer goes in a
    `keras.Sequential` or a `tf.data` map like `keras.layers.RandomFlip`, and the two halves called
    by hand give the parameters as well as the images, as the op itself does.

    Args:
        op: a `keras_eqssl.augment` op (or its `serialize` dict).
        seed: int or None, the seed of the layer's Keras `SeedGenerator` (calls without a seed
            draw from it).

    Input: float images in [0, 1], `(B, H, W, C)` or one `(H, W, C)` image, C in {1, 3}, or a
    dict with `"images"` (and `"labels"`, passed through). Eager calls also take uint8; inside
    `tf.data`, Keras casts inputs to float32 first, so scale uint8 images to [0, 1] before.
    Output: float32 `(B, H', W', 3)`, `(H', W')` = `op.output_size((H, W))`. With `training=False`
    the op applies its identity parameters (`op.identity_params`: unchanged images, only resized
    by ops that resize).

    Example:
    >>> from keras_eqssl.augment import Flip, OpLayer, Rotation
    >>> layer = OpLayer(Rotation(degrees=30))
    >>> images = tf.random.stateless_uniform((4, 8, 8, 3), seed=(0, 1))
    >>> params = layer.get_random_transformation(images, seed=0)
    >>> sorted(params), tuple(params["rotation"].shape)
    (['rotation'], (4, 1))
    >>> out = layer.transform_images(images, params)
    >>> bool(tf.reduce_all(out == Rotation(degrees=30).apply(images, params)))
    True
    >>> model = keras.Sequential([OpLayer(Flip(), seed=1), layer])
    >>> tuple(model(images).shape)
    (4, 8, 8, 3)
    """

    _USE_BASE_FACTOR = False

    def __init__(self, op: base.Op | dict, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.op = base.from_config(op) if isinstance(op, dict) else op
        if not isinstance(self.op, base.Op):
            raise TypeError(f"OpLayer wraps a keras_eqssl.augment op; received {type(op).__name__}.")
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, data, training=True, seed=None) -> dict:
        """The op's parameters for `data` (images or `{"images": ...}`); its identity ones when not training.

        `seed`: an int or shape-(2,) int tensor (a stateless draw: the same seed gives the same
        parameters), a `keras.random.SeedGenerator`, or None (the layer's generator).
        """
        images = data["images"] if isinstance(data, dict) else data
        shape = tf.shape(images)
        batch_size, image_size = (shape[0], shape[1:3]) if self._is_batched(images) else (1, shape[0:2])
        if not training:
            return self.op.identity_params(batch_size)
        if seed is None:
            seed = self._get_seed_generator(self.backend._backend)
        if isinstance(seed, keras.random.SeedGenerator):
            seed = seed.next()
        return self.op.sample(batch_size, seed, image_size=image_size)

    def transform_images(self, images, transformation, training=True) -> tf.Tensor:
        """`op.apply(images, transformation)` on float32 RGB (the identity parameters when not training)."""
        images = to_float_rgb(images, where=f"OpLayer({self.op.name!r})")
        if not training or transformation is None:
            transformation = self.op.identity_params(tf.shape(images)[0])
        return self.op.apply(images, transformation)

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def compute_output_shape(self, input_shape):
        *lead, height, width, _ = input_shape
        return (*lead, *self.op.output_size((height, width)), 3)

    def get_config(self) -> dict:
        return {**super().get_config(), "op": base.serialize(self.op), "seed": self.seed}
