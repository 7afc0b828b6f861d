"""Input handling of ops and policies: uint8 / float / grayscale inputs, clear errors for bad
images, seeds and constructor arguments."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_params_equal, uint8_images

from keras_eqssl.augment import (
    AugMix,
    ColorJitter,
    Compose,
    Flip,
    GaussianBlur,
    Grayscale,
    RandomApply,
    RandomChoice,
    RandomResizedCrop,
    Rotate90,
    Rotation,
    Solarize,
    Translation,
    to_float_rgb,
)
from keras_eqssl.augment.policies import MultiCropPolicy, RotatedCropPolicy, byol, simclr, stl

OPS = [
    pytest.param(lambda: Flip(), id="flip"),
    pytest.param(lambda: RandomResizedCrop(16), id="crop"),
    pytest.param(lambda: ColorJitter(), id="color_jitter"),
    pytest.param(lambda: Grayscale(p=0.5), id="grayscale"),
    pytest.param(lambda: Solarize(p=0.5), id="solarize"),
    pytest.param(lambda: GaussianBlur(), id="blur"),
    pytest.param(lambda: Rotation(), id="rotation"),
    pytest.param(lambda: Rotate90(), id="rot90"),
    pytest.param(lambda: Translation(4.0), id="translation"),
    pytest.param(lambda: AugMix(), id="augmix"),
    pytest.param(lambda: RandomApply(ColorJitter(), p=0.8), id="random_apply"),
    pytest.param(lambda: RandomChoice([Rotation(), Translation(4.0)]), id="random_choice"),
    pytest.param(lambda: Compose([RandomResizedCrop(16), Flip()]), id="compose"),
]
POLICIES = [
    pytest.param(lambda: simclr(16), id="simclr"),
    pytest.param(lambda: byol(16), id="byol"),
    pytest.param(lambda: stl(16), id="stl"),
    pytest.param(lambda: MultiCropPolicy(global_size=16, local_size=8, num_local=2), id="gtsa"),
    pytest.param(lambda: RotatedCropPolicy(simclr(16), size=8), id="essl"),
]


def _call(thing, images):
    """Ops take (images, seed); policies (images, seed=...). Both return (images or views, params)."""
    return thing(images, seed=5)


def _flat(result):
    """(out, params) of an op or (views, params) of a policy -> ({name: image}, {name: params})."""
    out, params = result
    if isinstance(out, dict):
        return {k: v.numpy() for k, v in out.items()}, params
    return {"out": out.numpy()}, {"out": params}


# --- accepted inputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", OPS + POLICIES)
@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
def test_uint8_and_float_inputs_give_the_same_result(make, float_dtype):
    thing = make()
    images = uint8_images(4, (32, 32))
    out_u8, params_u8 = _flat(_call(thing, images))
    out_f, params_f = _flat(_call(thing, (images.astype(float_dtype) / 255.0)))
    for name in out_u8:
        assert_params_equal(params_f[name], params_u8[name], what=name)
        assert out_f[name].dtype == np.float32
        np.testing.assert_allclose(out_f[name], out_u8[name], atol=1e-6, err_msg=name)


@pytest.mark.parametrize("make", OPS + POLICIES)
def test_one_channel_images_become_three_channels(make):
    thing = make()
    gray = uint8_images(4, (32, 32))[..., :1]
    out_1, params_1 = _flat(_call(thing, gray))
    out_3, params_3 = _flat(_call(thing, np.repeat(gray, 3, axis=-1)))
    for name in out_1:
        assert out_1[name].shape[-1] == 3, f"{name}: {out_1[name].shape}"
        assert_params_equal(params_1[name], params_3[name], what=name)
        np.testing.assert_allclose(out_1[name], out_3[name], atol=1e-6, err_msg=name)


def test_to_float_rgb_scales_uint8_and_keeps_floats():
    images = np.array([[[[0, 128, 255]]]], np.uint8)
    np.testing.assert_allclose(to_float_rgb(images).numpy(), [[[[0.0, 128 / 255, 1.0]]]], atol=1e-7)
    floats = np.array([[[[0.1, 0.5, 0.9]]]], np.float64)
    out = to_float_rgb(floats)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), floats, atol=1e-7)
    gray = to_float_rgb(np.array([[[[51]]]], np.uint8)).numpy()
    np.testing.assert_allclose(gray, [[[[0.2, 0.2, 0.2]]]], atol=1e-7)


# --- rejected inputs ----------------------------------------------------------------------------
BAD_IMAGES = [
    pytest.param(lambda: uint8_images(1, (32, 32))[0], ValueError, ["rank 3", "(32, 32, 3)"], id="rank3"),
    pytest.param(
        lambda: np.zeros((2, 32, 32), np.uint8), ValueError, ["rank 3", "(2, 32, 32)"], id="rank3_no_channels"
    ),
    pytest.param(
        lambda: np.zeros((2, 1, 32, 32, 3), np.uint8), ValueError, ["rank 5", "(2, 1, 32, 32, 3)"], id="rank5"
    ),
    pytest.param(lambda: np.zeros((2, 32, 32, 2), np.uint8), ValueError, ["2 channels", "(2, 32, 32, 2)"], id="2ch"),
    pytest.param(lambda: np.zeros((2, 32, 32, 5), np.float32), ValueError, ["5 channels", "(2, 32, 32, 5)"], id="5ch"),
    pytest.param(lambda: tf.constant([["a", "b"]]), TypeError, ["string", "(1, 2)"], id="string"),
    pytest.param(lambda: np.zeros((2, 32, 32, 3), np.int32), TypeError, ["int32"], id="int32"),
    pytest.param(lambda: np.zeros((2, 32, 32, 3), np.bool_), TypeError, ["bool"], id="bool"),
]


@pytest.mark.parametrize("make_images, error, fragments", BAD_IMAGES)
@pytest.mark.parametrize("make", [OPS[0], OPS[1], OPS[9], POLICIES[0], POLICIES[2], POLICIES[3], POLICIES[4]])
def test_bad_images_raise_a_clear_error(make, make_images, error, fragments):
    thing = make()
    with pytest.raises(error) as info:
        _call(thing, make_images())
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the error: {message}"


def test_unknown_channels_are_checked_in_the_graph():
    op = Flip()
    fn = tf.function(lambda x: op(x, seed=0)[0], input_signature=[tf.TensorSpec([None, None, None, None], tf.float32)])
    assert fn(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 8, 8, 3)
    assert fn(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 8, 8, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 or 3 channels"):
        fn(np.zeros((2, 8, 8, 2), np.float32))


@pytest.mark.parametrize(
    "seed, error, fragment",
    [
        (1.5, TypeError, "float"),
        (np.array([1, 2, 3]), ValueError, "(3,)"),
        (tf.constant([1.0, 2.0]), TypeError, "float"),
    ],
    ids=["float", "three_ints", "float_tensor"],
)
def test_bad_seeds_raise_a_clear_error(seed, error, fragment):
    with pytest.raises(error) as info:
        Flip().sample(4, seed)
    assert fragment in str(info.value)


# --- constructor arguments ----------------------------------------------------------------------
BAD_ARGS = [
    pytest.param(lambda: Flip(p=1.5), "p", "1.5", id="flip_p"),
    pytest.param(lambda: Grayscale(p=-0.1), "p", "-0.1", id="grayscale_p"),
    pytest.param(lambda: Solarize(p=2.0), "p", "2.0", id="solarize_p"),
    pytest.param(lambda: Solarize(threshold=1.5), "threshold", "1.5", id="solarize_threshold"),
    pytest.param(lambda: RandomApply(Flip(), p=1.5), "p", "1.5", id="random_apply_p"),
    pytest.param(lambda: RandomResizedCrop(32, scale=(0.5, 0.2)), "scale", "(0.5, 0.2)", id="crop_scale_min_gt_max"),
    pytest.param(lambda: RandomResizedCrop(32, scale=(0.5, 1.5)), "scale", "1.5", id="crop_scale_above_1"),
    pytest.param(lambda: RandomResizedCrop(32, scale=(0.0, 0.5)), "scale", "0.0", id="crop_scale_zero"),
    pytest.param(lambda: RandomResizedCrop(32, ratio=(2.0, 1.0)), "ratio", "(2.0, 1.0)", id="crop_ratio"),
    pytest.param(lambda: RandomResizedCrop(0), "size", "0", id="crop_size"),
    pytest.param(lambda: Translation(max_shift=-1), "max_shift", "-1", id="translation_max_shift"),
    pytest.param(lambda: Translation(fill_mode="mirror"), "fill_mode", "mirror", id="translation_fill"),
    pytest.param(lambda: Rotation(fill_mode="mirror"), "fill_mode", "mirror", id="rotation_fill"),
    pytest.param(lambda: Rotation(degrees=(-200.0, 10.0)), "degrees", "-200", id="rotation_degrees"),
    pytest.param(lambda: Rotate90(ks=(4,)), "ks", "(4,)", id="rot90_ks"),
    pytest.param(lambda: AugMix(severity=11), "severity", "11", id="augmix_severity"),
    pytest.param(lambda: AugMix(severity=0), "severity", "0", id="augmix_severity_0"),
    pytest.param(lambda: AugMix(width=0), "width", "0", id="augmix_width"),
    pytest.param(lambda: AugMix(depth=0), "depth", "0", id="augmix_depth"),
    pytest.param(lambda: AugMix(alpha=0.0), "alpha", "0.0", id="augmix_alpha"),
    pytest.param(lambda: GaussianBlur(kernel_size=4), "kernel_size", "4", id="blur_kernel"),
    pytest.param(lambda: GaussianBlur(sigma=(2.0, 1.0)), "sigma", "(2.0, 1.0)", id="blur_sigma"),
    pytest.param(lambda: GaussianBlur(sigma=(-1.0, 1.0)), "sigma", "-1.0", id="blur_sigma_negative"),
    pytest.param(lambda: ColorJitter(brightness=-0.1), "brightness", "-0.1", id="jitter_brightness"),
    pytest.param(lambda: ColorJitter(hue=0.7), "hue", "0.7", id="jitter_hue"),
    pytest.param(lambda: RandomChoice([Flip(), Grayscale()], weights=[1.0, -1.0]), "weights", "-1.0", id="choice_w"),
    pytest.param(lambda: RandomChoice([Flip()]), "two ops", "Flip", id="choice_one_op"),
    pytest.param(lambda: Compose([Flip(), Flip()]), "'flip'", "name=", id="compose_duplicate_keys"),
    pytest.param(lambda: MultiCropPolicy(num_local=-1), "num_local", "-1", id="gtsa_num_local"),
]


@pytest.mark.parametrize("make, argument, value", BAD_ARGS)
def test_bad_constructor_args_name_the_argument_and_value(make, argument, value):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert argument in message and value in message, f"expected {argument!r} and {value!r} in: {message}"


GOOD_ARGS = [
    lambda: Flip(p=0.0),
    lambda: Flip(p=1.0),
    lambda: RandomResizedCrop(8, scale=(1.0, 1.0)),
    lambda: Translation(max_shift=0),
    lambda: AugMix(severity=1),
    lambda: AugMix(severity=10),
    lambda: GaussianBlur(sigma=(0.0, 0.0), kernel_size=1),
    lambda: Rotate90(ks=(0,)),
    lambda: ColorJitter(brightness=0, contrast=0, saturation=0, hue=0.5),
    lambda: Rotation(degrees=(-180.0, 180.0)),
    lambda: Compose([Flip(), Flip(name="flip2")]),
]


@pytest.mark.parametrize("make", GOOD_ARGS)
def test_boundary_constructor_args_are_accepted(make):
    """The boundaries of the checks above are allowed (so the checks do not just always raise)."""
    op = make()
    out, _ = op(uint8_images(2, (16, 16)), seed=0)
    assert out.shape[-1] == 3
