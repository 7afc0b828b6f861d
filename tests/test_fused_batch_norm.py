"""`FusedBatchNormalization`: the Keras layer's results through TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from nn_helpers import random_images, run_layer_test

from keras_eqssl.nn import FusedBatchNormalization, ResNetBackbone


def _maps(shape=(6, 5, 4, 8), seed=0):
    rng = np.random.default_rng(seed)
    return (3.0 + 2.0 * rng.normal(size=shape)).astype("float32")


def _pair(**kwargs):
    """A fused layer and a plain Keras one with the same (non-trivial) weights."""
    layers = [FusedBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)]
    channels = 8
    rng = np.random.default_rng(1)
    weights = None
    for layer in layers:
        layer.build((None, 5, 4, channels))
        if weights is None:
            weights = [rng.uniform(0.5, 1.5, size=w.shape).astype("float32") for w in layer.get_weights()]
        layer.set_weights(weights)
    return layers


def _train_step(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        weights = tf.reshape(tf.cos(tf.range(tf.size(y), dtype=tf.float32)), tf.shape(y))
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return y, grads


def test_fused_training_step_matches_keras():
    fused, plain = _pair(momentum=0.9, epsilon=1e-5)
    x = _maps()
    initial = fused.moving_variance.numpy()  # before the step
    y_f, g_f = _train_step(fused, x)
    y_p, g_p = _train_step(plain, x)
    np.testing.assert_allclose(y_f, y_p, atol=1e-5)
    for name, a, b in zip(["x", "gamma", "beta"], g_f, g_p):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=f"gradient wrt {name}")
    # Moving statistics: the biased batch variance, as Keras keeps it (the kernel returns n - 1).
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)
    biased = x.reshape(-1, 8).astype("float64").var(axis=0)
    np.testing.assert_allclose(fused.moving_variance, 0.9 * initial + 0.1 * biased, rtol=1e-5)


def test_fused_layer_uses_the_fused_kernel_only_in_training():
    fused, _ = _pair()

    @tf.function
    def run(x, training):
        return fused(x, training=training)

    def op_types(training):
        graph = run.get_concrete_function(tf.TensorSpec((2, 5, 4, 8)), training).graph
        return {op.type for op in graph.get_operations()}

    assert any(t.startswith("FusedBatchNorm") for t in op_types(True))
    assert not any(t.startswith("FusedBatchNorm") for t in op_types(False))


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(fused=False), (6, 5, 4, 8)),  # switched off
        (dict(synchronized=True), (6, 5, 4, 8)),  # needs cross-replica moments
        (dict(), (6, 8)),  # not a feature map
        (dict(dtype="float64"), (6, 5, 4, 8)),  # no float64 kernel
    ],
)
def test_falls_back_to_the_keras_layer_exactly(kwargs, shape):
    fused = FusedBatchNormalization(**kwargs)
    plain = keras.layers.BatchNormalization(**{k: v for k, v in kwargs.items() if k != "fused"})
    x = _maps(shape)
    np.testing.assert_array_equal(fused(x, training=True), plain(x, training=True))
    np.testing.assert_array_equal(fused.moving_variance, plain.moving_variance)


def test_inference_uses_the_moving_statistics():
    fused, plain = _pair()
    x = _maps()
    np.testing.assert_array_equal(fused(x, training=False), plain(x, training=False))


def test_frozen_layer_is_not_updated():
    fused, _ = _pair()
    fused.trainable = False
    before = fused.get_weights()
    fused(_maps(), training=True)
    for a, b in zip(before, fused.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_reads_16_bit_maps_with_float32_statistics(policy):
    fused = FusedBatchNormalization(dtype=policy)
    plain = keras.layers.BatchNormalization(dtype=policy)
    x = _maps()
    y_f, y_p = fused(x, training=True), plain(x, training=True)
    assert y_f.dtype == y_p.dtype == tf.as_dtype(policy.split("_")[1])
    assert fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y_f, "float32"), np.asarray(y_p, "float32"), atol=0.05)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-2)


def test_layer_config_and_saving(tmp_path):
    run_layer_test(
        lambda: FusedBatchNormalization(momentum=0.8, epsilon=1e-3),
        [_maps()],
        (6, 5, 4, 8),
        expected_num_weights=4,
        tmp_path=tmp_path,
    )
    assert FusedBatchNormalization(fused=False).get_config()["fused"] is False


def test_backbone_trains_the_same_with_and_without_the_fused_kernel():
    keras.utils.set_random_seed(0)
    kwargs = dict(stackwise_num_blocks=[1, 1], stem="imagenet", width=0.25)
    fused = ResNetBackbone(**kwargs)
    plain = ResNetBackbone(**kwargs, fused_bn=False)
    plain.set_weights(fused.get_weights())
    assert ResNetBackbone.from_config(plain.get_config()).fused_bn is False
    x = random_images(4, 32)
    outs = []
    for backbone in (fused, plain):
        with tf.GradientTape() as tape:
            pooled = backbone(x, training=True)["pooled"]
            loss = tf.reduce_sum(tf.square(pooled))
        outs.append((pooled, tape.gradient(loss, backbone.trainable_variables), backbone.get_weights()))
    (p_f, g_f, w_f), (p_p, g_p, w_p) = outs
    np.testing.assert_allclose(p_f, p_p, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_f, g_p):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * float(np.abs(b).max()))
    for a, b in zip(w_f, w_p):  # moving statistics after the step
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
