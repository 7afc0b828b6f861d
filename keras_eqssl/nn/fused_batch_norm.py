"""Keras `BatchNormalization` that trains through TensorFlow's fused kernel where it can."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_eqssl")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step on feature maps is one fused kernel.

    Keras 3 normalises a batch with separate ops (cast to float32, mean, squared difference,
    mean, rsqrt, multiply, add), each a pass over the feature map, forward and backward.
    TensorFlow's `FusedBatchNormV3` does the same in one pass each way, reading bf16/fp16 maps
    directly with float32 statistics; with oneDNN on (TensorFlow's default on CPUs with AVX-512
    VNNI/BF16 or AMX) it made a ResNet-18 forward + backward 1.2x faster in float32 and 1.5x in
    bf16 at 96 px, batch 128 (`tools/bench_batch_norm.py`, numbers in `docs/performance.md`).

    Same weights, arguments and results as the Keras layer (rounding aside: the fused kernel
    sums in another order); the moving variance gets the biased batch variance, as in Keras.
    The fused kernel runs only when it computes the same thing: TensorFlow backend, `training`
    and `trainable`, a 4-D channels-last input, `fused=True`, no mask, not `synchronized`
    (global-batch statistics need the cross-replica moments), no `renorm`, and float32 weights
    with float32, bf16 or fp16 maps (the kernel's types; float64 takes the Keras path).
    Everything else, inference included, is the Keras layer's own code.

    Input: `(B, H, W, C)` (or any shape the Keras layer takes); output: the same shape, in the
    layer's compute dtype.

    Args:
        fused: bool. Use the fused kernel where it applies; `False` is exactly
            `keras.layers.BatchNormalization`.
        **kwargs: the arguments of `keras.layers.BatchNormalization`.

    Examples:

    ```python
    import numpy as np
    from keras_eqssl.nn import FusedBatchNormalization

    bn = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    y = bn(np.random.rand(8, 4, 4, 16).astype("float32"), training=True)
    y.shape  # (8, 4, 4, 16); per channel, mean ~0 and variance ~1
    ```
    """

    def __init__(self, fused: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.fused = bool(fused)

    def _can_fuse(self, inputs, training, mask) -> bool:
        return (
            self.fused
            and bool(training)
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)
            and self.variable_dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel returns the unbiased (n - 1) variance for the moving average; Keras keeps
        # the biased one.
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "fused": self.fused}
