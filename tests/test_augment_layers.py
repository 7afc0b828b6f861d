"""`OpLayer`: every augmentation op as a Keras 3 image preprocessing layer gives the op's parameters and output."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_params_equal, random_images, to_numpy
from test_augment_ops import OP_CASES

from keras_eqssl.augment import Flip, OpLayer, RandomResizedCrop, Rotation, serialize
from keras_eqssl.augment.seeds import make_seed

# One case per op kind (the op tests cover the variants of each).
LAYER_CASES = [
    case
    for case in OP_CASES
    if case.id
    in (
        "flip", "crop_custom", "color_jitter", "grayscale", "solarize", "blur", "rotation", "rot90", "translation",
        "augmix", "random_apply_color", "random_choice", "compose",
    )
]  # fmt: skip
# tf.data traces each op once more; the heavy chains run only with the slow tests (the op tests check
# every op in tf.data already).
HEAVY_IN_TF_DATA = ("augmix", "color_jitter", "random_apply_color", "compose")
TF_DATA_CASES = [
    pytest.param(*case.values, id=case.id, marks=[pytest.mark.slow] if case.id in HEAVY_IN_TF_DATA else [])
    for case in LAYER_CASES
]


def _images(batch=6, size=(24, 24)):
    return tf.constant(random_images(batch, size, seed=1))


def _keys(op):
    return sorted(spec.key for spec in op.param_specs())


@pytest.mark.parametrize("make_op, distribution", LAYER_CASES)
def test_layer_halves_are_the_ops_sample_and_apply(make_op, distribution):
    op, images = make_op(), _images()
    layer = OpLayer(make_op())
    params = layer.get_random_transformation(images, seed=make_seed(5))
    assert sorted(params) == _keys(op)
    assert_params_equal(params, op.sample(6, make_seed(5), image_size=(24, 24)), what="layer vs op params")
    out = layer.transform_images(images, params)
    expected = op.apply(images, params)
    assert out.dtype == tf.float32 and np.array_equal(out.numpy(), expected.numpy())
    # a call draws from the layer's generator; its output has the declared shape
    shape = tuple(layer(images).shape)
    assert shape == layer.compute_output_shape(tuple(images.shape)) == (6, *op.output_size((24, 24)), 3)


@pytest.mark.parametrize("make_op, distribution", TF_DATA_CASES)
def test_layer_in_tf_data_map_gives_the_eager_parameters(make_op, distribution):
    layer = OpLayer(make_op())
    images = random_images(8, (24, 24), seed=2)

    def augment(step, batch):
        params = layer.get_random_transformation(batch, seed=make_seed(7, step))
        return layer.transform_images(batch, params), params

    ds = tf.data.Dataset.from_tensor_slices(images).batch(4).enumerate().map(augment)
    for step, (out, params) in enumerate(ds):
        batch = images[step * 4 : (step + 1) * 4]
        eager = layer.get_random_transformation(batch, seed=make_seed(7, step))
        assert_params_equal(params, eager, what=f"tf.data step {step}")
        np.testing.assert_allclose(out.numpy(), layer.transform_images(batch, eager).numpy(), atol=1e-5)
    assert step == 1


def test_layer_as_a_tf_data_map_function_and_in_sequential():
    images = random_images(8, (32, 32), seed=3)
    crop = OpLayer(RandomResizedCrop(16), seed=0)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(4).map(crop)
    assert [tuple(b.shape) for b in ds] == [(4, 16, 16, 3)] * 2
    model = keras.Sequential([OpLayer(Flip(), seed=1), OpLayer(Rotation(30.0), seed=2), crop])
    out = model(images)
    assert not np.array_equal(out.numpy(), model(images).numpy())  # each call draws new parameters
    assert tuple(out.shape) == (8, 16, 16, 3) and model.compute_output_shape((None, 32, 32, 3)) == (None, 16, 16, 3)
    # not training: each op applies its identity parameters (the crop only resizes the whole image)
    still = model(images, training=False).numpy()
    resized = RandomResizedCrop(16).apply(tf.constant(images), RandomResizedCrop(16).identity_params(8))
    np.testing.assert_array_equal(still, resized.numpy())
    assert not np.array_equal(out.numpy(), still)


def test_single_images_dicts_and_the_config_round_trip():
    layer = OpLayer(Rotation(20.0, name="turn"), seed=4)
    image = random_images(1, (16, 16), seed=4)[0]
    assert tuple(layer(image).shape) == (16, 16, 3)
    out = layer({"images": image[None], "labels": np.array([3])})
    assert tuple(out["images"].shape) == (1, 16, 16, 3) and int(out["labels"][0]) == 3
    params = to_numpy(layer.get_random_transformation(image[None], seed=9))
    assert sorted(params) == ["turn"]
    clone = OpLayer.from_config(layer.get_config())
    assert serialize(clone.op) == serialize(layer.op) and clone.seed == 4
    assert_params_equal(clone.get_random_transformation(image[None], seed=9), params)
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(rebuilt, OpLayer) and serialize(rebuilt.op) == serialize(layer.op)


def test_layer_refuses_what_is_not_an_op():
    with pytest.raises(TypeError, match="OpLayer wraps a keras_eqssl.augment op"):
        OpLayer(keras.layers.RandomFlip())
