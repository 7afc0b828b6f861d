"""Tests of every augmentation op: the shared contract (`helpers.run_op_test`) per op, then what
each recorded parameter means, checked against independent references (test patterns, NumPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    assert_categorical,
    assert_frequency,
    assert_uniform,
    random_images,
    run_op_test,
    to_numpy,
)

from keras_eqssl.augment import (
    AUGMIX_ALL_OPS,
    AUGMIX_OPS,
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
)
from keras_eqssl.augment import color as color_ops

NO_OP = len(AUGMIX_OPS)


# --- distribution expectations shared by several cases ---------------------------------------
def crop_distribution(scale, ratio, name="crop"):
    """Recorded crop boxes on square images: inside the image, scale/ratio in range, uniform placement."""

    def check(crop, params):
        y0, x0, h, w = crop.T.astype(np.float64)
        assert np.all(y0 >= 0) and np.all(x0 >= 0), "crop box starts outside the image"
        assert np.all(y0 + h <= 1 + 1e-6) and np.all(x0 + w <= 1 + 1e-6), "crop box ends outside the image"
        area = params[f"{name}_scale"][:, 0].astype(np.float64)
        r = params[f"{name}_ratio"][:, 0].astype(np.float64)
        np.testing.assert_allclose(area, h * w, rtol=1e-5, err_msg="crop_scale is not the box area")
        np.testing.assert_allclose(r, w / h, rtol=1e-5, err_msg="crop_ratio is not w / h (square image)")
        lo, hi = scale
        assert area.min() >= lo - 1e-6 and area.max() <= hi + 1e-6, f"scale [{area.min()}, {area.max()}] not in {scale}"
        assert area.min() - lo < 0.01 * (hi - lo) and hi - area.max() < 0.02 * (hi - lo), (
            "scale does not span its range"
        )
        rlo, rhi = (math.log(v) for v in ratio)
        log_r = np.log(r)
        assert log_r.min() >= rlo - 1e-5 and log_r.max() <= rhi + 1e-5, f"ratio [{r.min()}, {r.max()}] not in {ratio}"
        assert log_r.min() - rlo < 0.01 * (rhi - rlo) and rhi - log_r.max() < 0.01 * (rhi - rlo)
        # log-uniform ratio, symmetric in log space on a square image.
        assert abs(log_r.mean() - (rlo + rhi) / 2) < 0.03 * (rhi - rlo), f"mean log ratio {log_r.mean()}"
        # The box position is uniform over the free room.
        for start, extent in ((y0, h), (x0, w)):
            room = 1 - extent
            keep = room > 0.05
            assert_uniform(start[keep] / room[keep], 0.0, 1.0, what="crop position / free room", end_tol=0.02)

    return check


def jitter_order_distribution(order, params):
    order = np.asarray(order)
    assert np.all(np.sort(order, axis=1) == np.arange(4)), "color_order rows are not permutations of 0..3"
    for position in (0, 3):
        assert_categorical(order[:, position], [0.25] * 4, tol=0.02, what=f"op at position {position}")
    # All 24 orders occur.
    assert len(np.unique(order, axis=0)) == 24


def augmix_distribution(severity, width, depth, op_names=AUGMIX_OPS):
    no_op = len(op_names)

    def check(ops, params):
        mags = params["augmix_mags"].astype(np.float64)
        weights = params["augmix_weights"].astype(np.float64)
        mix = params["augmix_mix"].astype(np.float64)
        steps = 3 if depth == -1 else depth
        assert ops.shape[1:] == (width, steps)
        assert ops.min() >= 0 and ops.max() <= no_op
        used = ops != no_op
        # Unused steps come after the used ones and record magnitude 0.
        assert np.all(used[..., 0]), "a chain with no op"
        assert np.all(used[..., 1:] <= used[..., :-1]), "an unused step before a used one"
        assert np.all(mags[~used] == 0.0), "unused steps must have magnitude 0"
        if depth == -1:
            assert_categorical(used.sum(-1).ravel() - 1, [1 / 3] * 3, tol=0.02, what="chain depth - 1")
        else:
            assert np.all(used), "fixed depth: every step is used"
        assert_categorical(ops[used], [1 / no_op] * no_op, tol=0.015, what="augmix op")
        m = mags[used]
        assert np.all(m != 0.0) and np.abs(m).max() <= severity / 10 + 1e-6
        assert_uniform(np.abs(m), 0.0, severity / 10, what="|magnitude|", mean_tol=0.05, end_tol=0.05)
        assert_frequency(m > 0, 0.5, tol=0.02, what="positive magnitudes")
        assert np.all(weights >= 0) and np.allclose(weights.sum(1), 1.0, atol=1e-5), "weights must sum to 1"
        # Dirichlet(1, ..., 1): each weight has mean 1 / width.
        np.testing.assert_allclose(weights.mean(0), 1 / width, atol=0.02)
        # Beta(1, 1) is uniform on [0, 1].
        assert_uniform(mix, 0.0, 1.0, what="augmix_mix", mean_tol=0.02, end_tol=0.01)

    return check


def random_apply_color(values, params):
    applied = params["color_applied"][:, 0] > 0.5
    color, order = params["color"], params["color_order"]
    assert np.all(color[~applied] == [1.0, 1.0, 1.0, 0.0]), "not applied: color must be the identity factors"
    assert np.all(order[~applied] == [0, 1, 2, 3]), "not applied: color_order must be the identity order"
    for j, (lo, hi) in enumerate([(0.6, 1.4)] * 3 + [(-0.1, 0.1)]):
        assert_uniform(color[applied, j], lo, hi, what=f"applied color[{j}]")
    assert_categorical(order[applied, 0], [0.25] * 4, tol=0.02, what="applied first op")


def random_apply_blur(values, params):
    applied = params["blur_applied"][:, 0] > 0.5
    assert np.all(values[~applied] == 0.0), "not applied: sigma must be 0"
    assert_uniform(values[applied], 0.1, 2.0, what="applied sigma")


def random_choice_branches(choice, params):
    choice = choice[:, 0]
    rot, shift, gray = params["rotation"][:, 0], params["translation"], params["grayscale"][:, 0]
    assert np.all(rot[choice != 0] == 0.0) and np.all(shift[choice != 1] == 0.0), "branches not taken: identity"
    assert np.array_equal(gray, (choice == 2).astype(np.float32)), "grayscale(p=1) recorded exactly where chosen"
    assert_uniform(rot[choice == 0], -30.0, 30.0, what="rotation where chosen")
    assert_uniform(shift[choice == 1], -4.0, 4.0, what="translation where chosen")


def compose_check(flip, params):
    applied = params["blur_applied"][:, 0]
    assert_frequency(applied, 0.5, what="blur_applied")
    # The ops inside a Compose draw independently of each other.
    assert_frequency(flip[:, 0] * applied, 0.3 * 0.5, tol=0.02, what="flip and blur_applied jointly")
    crop_distribution((0.08, 1.0), (3 / 4, 4 / 3))(params["crop"], params)


JITTER_RANGES = [(0.6, 1.4)] * 3 + [(-0.1, 0.1)]

# (id, factory, distribution expectations over 10,000 draws)
OP_CASES = [
    pytest.param(lambda: Flip(p=0.5), {"flip": ("bernoulli", 0.5)}, id="flip"),
    pytest.param(lambda: Flip(p=0.3), {"flip": ("bernoulli", 0.3)}, id="flip_p0.3"),
    pytest.param(lambda: RandomResizedCrop(24), {"crop": crop_distribution((0.08, 1.0), (3 / 4, 4 / 3))}, id="crop"),
    pytest.param(
        lambda: RandomResizedCrop(24, convention="torchvision"),
        {"crop": crop_distribution((0.08, 1.0), (3 / 4, 4 / 3))},
        id="crop_torchvision",
    ),
    pytest.param(
        lambda: RandomResizedCrop((16, 24), scale=(0.2, 0.6), ratio=(0.5, 2.0), name="rrc"),
        {"rrc": crop_distribution((0.2, 0.6), (0.5, 2.0), name="rrc")},
        id="crop_custom",
    ),
    pytest.param(
        lambda: ColorJitter(),
        {"color": ("uniform", JITTER_RANGES), "color_order": jitter_order_distribution},
        id="color_jitter",
    ),
    pytest.param(
        lambda: ColorJitter(convention="pil"),
        {"color": ("uniform", JITTER_RANGES), "color_order": jitter_order_distribution},
        id="color_jitter_pil",
    ),
    pytest.param(
        lambda: ColorJitter(brightness=(0.5, 0.9), contrast=0.2, saturation=(1.0, 2.0), hue=0.3),
        {"color": ("uniform", [(0.5, 0.9), (0.8, 1.2), (1.0, 2.0), (-0.3, 0.3)])},
        id="color_jitter_custom",
    ),
    pytest.param(lambda: Grayscale(p=0.2), {"grayscale": ("bernoulli", 0.2)}, id="grayscale"),
    pytest.param(lambda: Solarize(p=0.3), {"solarize": ("bernoulli", 0.3)}, id="solarize"),
    pytest.param(lambda: GaussianBlur(), {"blur": ("uniform", 0.1, 2.0)}, id="blur"),
    pytest.param(lambda: GaussianBlur(sigma=(0.5, 3.0), kernel_size=5), {"blur": ("uniform", 0.5, 3.0)}, id="blur_k5"),
    pytest.param(
        lambda: GaussianBlur(truncate=3.0, padding="symmetric"), {"blur": ("uniform", 0.1, 2.0)}, id="blur_truncate"
    ),
    pytest.param(lambda: Rotation(45.0), {"rotation": ("uniform", -45.0, 45.0)}, id="rotation"),
    pytest.param(
        lambda: Rotation((-10.0, 30.0), fill_mode="reflect"),
        {"rotation": ("uniform", -10.0, 30.0)},
        id="rotation_reflect",
    ),
    pytest.param(
        lambda: Rotation(30.0, interpolation="nearest"), {"rotation": ("uniform", -30.0, 30.0)}, id="rotation_nearest"
    ),
    pytest.param(lambda: Rotate90(), {"rot90": ("categorical", [0.25] * 4)}, id="rot90"),
    pytest.param(lambda: Rotate90(ks=(1, 3)), {"rot90": ("categorical", [0.0, 0.5, 0.0, 0.5])}, id="rot90_subset"),
    pytest.param(lambda: Translation(4.0), {"translation": ("uniform", -4.0, 4.0)}, id="translation"),
    pytest.param(lambda: AugMix(), {"augmix_ops": augmix_distribution(3, 3, -1)}, id="augmix"),
    pytest.param(
        lambda: AugMix(severity=6, width=2, depth=2), {"augmix_ops": augmix_distribution(6, 2, 2)}, id="augmix_depth2"
    ),
    pytest.param(
        lambda: AugMix(all_ops=True, whole_pixels=True),
        {"augmix_ops": augmix_distribution(3, 3, -1, AUGMIX_ALL_OPS)},
        id="augmix_all_ops",
    ),
    pytest.param(
        lambda: RandomApply(ColorJitter(), p=0.8),
        {"color_applied": ("bernoulli", 0.8), "color": random_apply_color},
        id="random_apply_color",
    ),
    pytest.param(
        lambda: RandomApply(GaussianBlur(), p=0.5),
        {"blur_applied": ("bernoulli", 0.5), "blur": random_apply_blur},
        id="random_apply_blur",
    ),
    pytest.param(
        lambda: RandomChoice([Rotation(30.0), Translation(4.0), Grayscale(p=1.0)], weights=[0.2, 0.5, 0.3]),
        {"choice": ("categorical", [0.2, 0.5, 0.3]), "rotation": lambda v, p: random_choice_branches(p["choice"], p)},
        id="random_choice",
    ),
    pytest.param(
        lambda: Compose([RandomResizedCrop(24), Flip(p=0.3), RandomApply(GaussianBlur(), p=0.5)]),
        {"flip": compose_check},
        id="compose",
    ),
]


@pytest.mark.parametrize("make_op, distribution", OP_CASES)
def test_op_contract(make_op, distribution):
    """Replay, seeds, per-image params, batch independence, config and the 10,000-draw distribution."""
    run_op_test(make_op(), distribution=distribution)


@pytest.mark.parametrize("make_op, distribution", OP_CASES)
def test_op_in_tf_data(make_op, distribution):
    """Graph mode in `Dataset.map(num_parallel_calls=AUTOTUNE)` on uint8 batches equals eager."""
    run_op_test(make_op(), batch_size=12, checks=("tf_data",))


# --- test patterns and references -------------------------------------------------------------
def coordinate_pattern(height, width, batch=1):
    """Channel 0 = y / (H - 1), channel 1 = x / (W - 1): each pixel's value is its normalised coordinate."""
    yy, xx = np.meshgrid(np.arange(height) / (height - 1), np.arange(width) / (width - 1), indexing="ij")
    pattern = np.stack([yy, xx, np.zeros_like(yy)], axis=-1).astype(np.float32)
    return np.repeat(pattern[None], batch, axis=0)


def dot_image(size, cy, cx, sigma=1.5, batch=1):
    """A Gaussian dot at (cy, cx) in pixel coordinates (pixel centres at integers)."""
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    dot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)
    return np.repeat(np.repeat(dot[None, ..., None], 3, axis=-1), batch, axis=0)


def centroid(images):
    """(B, 2) intensity centroid (y, x) of channel 0."""
    w = np.asarray(images)[..., 0].astype(np.float64)
    yy, xx = np.meshgrid(np.arange(w.shape[1]), np.arange(w.shape[2]), indexing="ij")
    total = w.sum(axis=(1, 2))
    return np.stack([(w * yy).sum(axis=(1, 2)) / total, (w * xx).sum(axis=(1, 2)) / total], axis=1)


def dot_angle(images, centre):
    """Angle in degrees of the dot around `centre`, counter-clockwise from +x as seen on screen (y up)."""
    c = centroid(images)
    return np.degrees(np.arctan2(-(c[:, 0] - centre), c[:, 1] - centre))


def angle_diff(a, b):
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


def numpy_blur(image, sigma, size, mode="reflect"):
    """Reference separable Gaussian blur of one (H, W, C) image, `mode` padding (np.pad's), `size` taps."""
    x = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(x**2) / (2 * sigma**2)) if sigma > 0 else (x == 0).astype(np.float64)
    kernel /= kernel.sum()
    pad = size // 2
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode=mode)
    h, w = image.shape[:2]
    rows = sum(kernel[i] * padded[i : i + h] for i in range(size))
    return sum(kernel[i] * rows[:, i : i + w] for i in range(size))


def jitter_params(factors, order=(0, 1, 2, 3)):
    factors, order = np.atleast_2d(factors), np.atleast_2d(order)
    order = np.broadcast_to(order, (len(factors), 4))
    return {"color": tf.constant(factors, tf.float32), "color_order": tf.constant(order, tf.int32)}


# --- RandomResizedCrop ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(48, 64), (64, 40)])
def test_crop_box_matches_coordinate_pattern(size):
    """The corners of each output sample the pattern at the recorded box corners (crop_and_resize's
    convention: normalised 0 is the first pixel centre, 1 the last); the box lies in the image."""
    height, width = size
    op = RandomResizedCrop((20, 24), scale=(0.08, 1.0))
    pattern = coordinate_pattern(height, width, batch=32)
    out, params = op(pattern, seed=3)
    out, crop = out.numpy(), params["crop"].numpy().astype(np.float64)
    y0, x0, h, w = crop.T
    assert np.all(crop[:, :2] >= 0) and np.all(y0 + h <= 1 + 1e-6) and np.all(x0 + w <= 1 + 1e-6)
    assert np.all(h > 0) and np.all(w > 0)
    np.testing.assert_allclose(out[:, 0, 0, 0], y0, atol=1e-5)
    np.testing.assert_allclose(out[:, 0, 0, 1], x0, atol=1e-5)
    np.testing.assert_allclose(out[:, -1, -1, 0], y0 + h, atol=1e-5)
    np.testing.assert_allclose(out[:, -1, -1, 1], x0 + w, atol=1e-5)
    np.testing.assert_allclose(out[:, 0, -1, 1], x0 + w, atol=1e-5)
    np.testing.assert_allclose(out[:, -1, 0, 0], y0 + h, atol=1e-5)
    # Scale and ratio are recorded in pixels of the (non-square) input.
    np.testing.assert_allclose(params["crop_scale"].numpy()[:, 0], h * w, rtol=1e-5)
    np.testing.assert_allclose(params["crop_ratio"].numpy()[:, 0], (w * width) / (h * height), rtol=1e-5)
    assert params["crop_ratio"].numpy().min() >= 3 / 4 - 1e-5 and params["crop_ratio"].numpy().max() <= 4 / 3 + 1e-5


def numpy_resize_axis(length_in, length_out):
    """(out, in) weights of torchvision's antialiased bilinear resize of one axis (PIL's precompute_coeffs)."""
    scale = length_in / length_out
    support = max(scale, 1.0)
    weights = np.zeros((length_out, length_in))
    for o in range(length_out):
        centre = scale * (o + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), length_in)
        for j in range(lo, hi):
            weights[o, j] = max(0.0, 1.0 - abs((j - centre + 0.5) / support))
        weights[o] /= weights[o].sum()
    return weights


@pytest.mark.parametrize("out_size", [(5, 7), (20, 16), (12, 10)])
def test_crop_torchvision_convention_matches_numpy_resized_crop(out_size):
    """Integer boxes: crop the pixels, then resize with half-pixel centres and antialiasing (torchvision)."""
    images = random_images(3, (12, 10))
    boxes = [(2, 1, 8, 6), (0, 0, 12, 10), (5, 4, 3, 2)]  # top, left, height, width in pixels
    crop = np.array([[t / 12, x / 10, h / 12, w / 10] for t, x, h, w in boxes], np.float32)
    op = RandomResizedCrop(out_size, convention="torchvision")
    out = op.apply(images, {"crop": crop}).numpy()
    for i, (t, x, h, w) in enumerate(boxes):
        patch = images[i, t : t + h, x : x + w].astype(np.float64)
        expected = np.einsum(
            "oh,hwc,pw->opc", numpy_resize_axis(h, out_size[0]), patch, numpy_resize_axis(w, out_size[1])
        )
        np.testing.assert_allclose(out[i], expected, atol=1e-5, err_msg=f"box {boxes[i]}")
    # The whole image at its own size is returned as is.
    same = RandomResizedCrop(None, convention="torchvision").apply(images, {"crop": np.tile([[0, 0, 1, 1]], (3, 1))})
    np.testing.assert_allclose(same.numpy(), images, atol=1e-6)


def test_crop_convention_is_validated_and_in_the_config():
    with pytest.raises(ValueError, match="convention.*'pil'"):
        RandomResizedCrop(8, convention="pil")
    op = RandomResizedCrop(8, convention="torchvision")
    assert op.get_config()["convention"] == "torchvision"
    assert RandomResizedCrop.from_config(op.get_config()).convention == "torchvision"
    assert RandomResizedCrop(8).convention == "crop_and_resize"


def test_crop_identity_params_return_the_image():
    images = random_images(4, (24, 24))
    op = RandomResizedCrop(24)
    np.testing.assert_allclose(op.apply(images, op.identity_params(4)).numpy(), images, atol=1e-6)


# --- Flip -------------------------------------------------------------------------------------
def test_flip_reverses_recorded_rows_only():
    images = random_images(64, (16, 16))
    op = Flip(p=0.5)
    out, params = op(images, seed=4)
    flipped = params["flip"].numpy()[:, 0] > 0.5
    assert 0 < flipped.sum() < 64
    assert np.array_equal(out.numpy()[flipped], images[flipped][:, :, ::-1])
    assert np.array_equal(out.numpy()[~flipped], images[~flipped])


# --- Rotation ---------------------------------------------------------------------------------
def test_rotation_angle_is_recovered_from_a_rotated_dot():
    size, radius = 64, 16.0
    centre = (size - 1) / 2
    dots = dot_image(size, centre - radius, centre, batch=32)  # straight above the centre: 90 degrees
    # The estimator itself: tf.image.rot90 (counter-clockwise) moves the dot to 180 degrees.
    np.testing.assert_allclose(dot_angle(dots[:1], centre), [90.0], atol=0.1)
    np.testing.assert_allclose(dot_angle(tf.image.rot90(dots[:1], 1), centre), [180.0], atol=0.1)
    op = Rotation(90.0)
    out, params = op(dots, seed=5)
    recorded = params["rotation"].numpy()[:, 0]
    assert np.abs(recorded).max() > 30.0
    measured = angle_diff(dot_angle(out, centre), 90.0)  # the dot started at 90 degrees
    err = angle_diff(measured, recorded)
    assert np.abs(err).max() < 2.0, f"(recorded, measured) counter-clockwise degrees:\n{np.c_[recorded, measured][:6]}"


@pytest.mark.parametrize("angle, k", [(90.0, 1), (-90.0, 3), (180.0, 2)])
def test_rotation_direction_matches_rot90(angle, k):
    """Positive angles are counter-clockwise, like tf.image.rot90 (square image, exact quarter turns)."""
    images = random_images(2, (32, 32))
    out = Rotation().apply(images, {"rotation": tf.fill([2, 1], angle)}).numpy()
    expected = tf.image.rot90(images, k).numpy()
    err = float(np.abs(out - expected).max())
    assert err < 1e-3, f"Rotation({angle}) is not tf.image.rot90(k={k}): max abs difference {err}"


# --- Rotate90 ---------------------------------------------------------------------------------
def test_rotation_nearest_moves_whole_pixels():
    """Nearest: a quarter turn is np.rot90 exactly, and any angle only copies input values (or the fill 0)."""
    images = random_images(2, (9, 9))
    op = Rotation(90.0, interpolation="nearest")
    quarter = op.apply(images, {"rotation": tf.constant([[90.0], [-90.0]])}).numpy()
    np.testing.assert_array_equal(quarter[0], np.rot90(images[0], 1, axes=(0, 1)))
    np.testing.assert_array_equal(quarter[1], np.rot90(images[1], -1, axes=(0, 1)))
    tilted = op.apply(images, {"rotation": tf.constant([[23.0], [-41.0]])}).numpy()
    for i in range(2):
        allowed = np.concatenate([images[i].reshape(-1, 3), np.zeros((1, 3), np.float32)])
        assert all((allowed == p).all(axis=1).any() for p in tilted[i].reshape(-1, 3)), "a new pixel value"
    bilinear = Rotation(90.0).apply(images, {"rotation": tf.constant([[23.0], [-41.0]])}).numpy()
    assert np.abs(bilinear - tilted).max() > 0.01


def test_rotation_interpolation_is_validated_and_in_the_config():
    with pytest.raises(ValueError, match="interpolation.*'bicubic'"):
        Rotation(10.0, interpolation="bicubic")
    config = Rotation(10.0, interpolation="nearest").get_config()
    assert config["interpolation"] == "nearest" and Rotation.from_config(config).interpolation == "nearest"


def test_rotate90_matches_tf_rot90_per_image():
    images = random_images(32, (16, 16))
    out, params = Rotate90()(images, seed=6)
    ks = params["rot90"].numpy()[:, 0]
    assert len(set(ks)) == 4
    for i, k in enumerate(ks):
        assert np.array_equal(out.numpy()[i], np.rot90(images[i], k, axes=(0, 1))), f"image {i}, k={k}"


def test_rot90_gathers_like_tf_rot90_in_graphs_bf16_and_gradients():
    from keras_eqssl.augment.geometric import rot90

    x = random_images(9, (7, 7))
    k = np.array([0, 1, 2, 3, 4, 5, -1, 2, 3])
    expected = np.stack([tf.image.rot90(x[i], int(k[i]) % 4).numpy() for i in range(9)])
    dynamic = tf.function(
        rot90, input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None], tf.int64)]
    )
    assert np.array_equal(dynamic(x, k).numpy(), expected)
    half = rot90(tf.cast(x, tf.bfloat16), k)
    assert half.dtype == tf.bfloat16 and np.array_equal(half.numpy(), tf.cast(expected, tf.bfloat16).numpy())
    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(rot90(variable, k) * expected)
    np.testing.assert_allclose(tf.convert_to_tensor(tape.gradient(loss, variable)), x, rtol=1e-6)  # the inverse turn


def test_rotate90_k1_moves_top_dot_to_the_left():
    dot = dot_image(33, 8, 16)  # above the centre (16, 16)
    out = Rotate90().apply(dot, {"rot90": tf.constant([[1]])}).numpy()
    np.testing.assert_allclose(centroid(out)[0], [16.0, 8.0], atol=1e-3)


# --- Translation ------------------------------------------------------------------------------
def test_translation_moves_a_dot_by_the_recorded_pixels():
    size = 64
    centre = (size - 1) / 2
    dots = dot_image(size, centre, centre, sigma=2.0, batch=32)
    op = Translation(max_shift=10.0)
    out, params = op(dots, seed=7)
    t = params["translation"].numpy().astype(np.float64)  # (tx, ty): right, down
    moved = centroid(out) - centroid(dots)  # (dy, dx)
    np.testing.assert_allclose(moved[:, 1], t[:, 0], atol=0.05, err_msg="x shift != tx")
    np.testing.assert_allclose(moved[:, 0], t[:, 1], atol=0.05, err_msg="y shift != ty")


# --- GaussianBlur -----------------------------------------------------------------------------
def test_blur_sigma_zero_is_identity_and_more_sigma_less_variance():
    images = random_images(1, (32, 32))[[0, 0, 0, 0, 0]]
    sigma = tf.constant([[0.0], [0.3], [0.8], [1.5], [3.0]])
    out = GaussianBlur(kernel_size=7).apply(images, {"blur": sigma}).numpy()
    np.testing.assert_allclose(out[0], images[0], atol=1e-6)
    variance = out.var(axis=(1, 2, 3))
    assert np.all(np.diff(variance) < 0), f"variance does not fall with sigma: {variance}"


@pytest.mark.parametrize("kernel_size, size", [(None, 32), (5, 20)])
def test_blur_matches_numpy_reference_per_image(kernel_size, size):
    images = random_images(6, (size, size))
    op = GaussianBlur(sigma=(0.1, 2.0), kernel_size=kernel_size)
    out, params = op(images, seed=8)
    taps = kernel_size or 3  # default: 10% of the side, odd, at least 3
    for i, sigma in enumerate(params["blur"].numpy()[:, 0]):
        np.testing.assert_allclose(out.numpy()[i], numpy_blur(images[i], sigma, taps), atol=1e-5, err_msg=f"image {i}")


def test_blur_truncate_covers_sigma_max_with_symmetric_padding():
    """truncate=t: 2 ceil(t sigma_max) + 1 taps; padding="symmetric" repeats the border pixel (PIL's)."""
    images = random_images(4, (24, 24))
    op = GaussianBlur(sigma=(0.1, 2.0), truncate=3.0, padding="symmetric")
    assert op.kernel_size_for(images) == 13
    assert GaussianBlur(sigma=(0.5, 1.2), truncate=4.0).kernel_size_for(images) == 11
    sigma = np.array([[0.1], [0.7], [1.4], [2.0]], np.float32)
    out = op.apply(images, {"blur": sigma}).numpy()
    for i in range(4):
        expected = numpy_blur(images[i], sigma[i, 0], 13, mode="symmetric")
        np.testing.assert_allclose(out[i], expected, atol=1e-5, err_msg=f"image {i}")
    # Reflect (the default) differs from symmetric at the border only.
    reflect = GaussianBlur(sigma=(0.1, 2.0), truncate=3.0).apply(images, {"blur": sigma}).numpy()
    np.testing.assert_allclose(reflect[:, 8:-8, 8:-8], out[:, 8:-8, 8:-8], atol=1e-6)
    assert np.abs(reflect - out).max() > 1e-3


def test_blur_options_are_validated_and_in_the_config():
    with pytest.raises(ValueError, match="truncate"):
        GaussianBlur(truncate=3.0, kernel_size=5)
    with pytest.raises(ValueError, match="truncate"):
        GaussianBlur(truncate=0.0)
    with pytest.raises(ValueError, match="padding.*'edge'"):
        GaussianBlur(padding="edge")
    config = GaussianBlur(truncate=3.0, padding="symmetric").get_config()
    assert config["truncate"] == 3.0 and config["padding"] == "symmetric"
    assert GaussianBlur.from_config(config).kernel_size_for(random_images(1, (8, 8))) == 13


# --- Grayscale / Solarize ---------------------------------------------------------------------
def test_grayscale_rows_are_gray_exactly_where_recorded():
    images = random_images(64, (8, 8))
    out, params = Grayscale(p=0.5)(images, seed=9)
    out, gray = out.numpy(), params["grayscale"].numpy()[:, 0] > 0.5
    assert 0 < gray.sum() < 64
    luma = images @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    np.testing.assert_allclose(out[gray], np.repeat(luma[gray][..., None], 3, -1), atol=1e-5)
    assert np.array_equal(out[~gray], images[~gray])
    assert np.all(np.ptp(images[~gray], axis=-1).max(axis=(1, 2)) > 0.01)


def test_solarize_inverts_bright_pixels_exactly_where_recorded():
    images = random_images(64, (8, 8))
    out, params = Solarize(p=0.5, threshold=0.5)(images, seed=10)
    out, done = out.numpy(), params["solarize"].numpy()[:, 0] > 0.5
    assert 0 < done.sum() < 64
    np.testing.assert_allclose(out[done], np.where(images[done] >= 0.5, 1 - images[done], images[done]), atol=1e-5)
    assert np.array_equal(out[~done], images[~done])


# --- ColorJitter ------------------------------------------------------------------------------
def test_color_jitter_identity_factors_are_identity():
    images = random_images(8, (16, 16))
    op = ColorJitter()
    np.testing.assert_allclose(op.apply(images, op.identity_params(8)).numpy(), images, atol=1e-5)
    orders = np.array([np.random.default_rng(i).permutation(4) for i in range(8)])
    out = op.apply(images, jitter_params(np.tile([1.0, 1.0, 1.0, 0.0], (8, 1)), orders)).numpy()
    np.testing.assert_allclose(out, images, atol=1e-5)


@pytest.mark.parametrize("b", [0.0, 0.5, 1.3, 1.9])
def test_brightness_scales_mid_gray(b):
    gray = np.full((1, 8, 8, 3), 0.5, np.float32)
    out = ColorJitter().apply(gray, jitter_params([b, 1.0, 1.0, 0.0])).numpy()
    np.testing.assert_allclose(out, np.full_like(gray, min(0.5 * b, 1.0)), atol=1e-6)


def test_contrast_saturation_hue_mean_what_they_say():
    op = ColorJitter()
    images = random_images(1, (8, 8))
    # Contrast c (torchvision): blend with the image's mean luma, c * x + (1 - c) * mean(luma).
    luma_weights = np.array([0.2989, 0.587, 0.114], np.float32)
    out = op.apply(images, jitter_params([1.0, 0.5, 1.0, 0.0])).numpy()
    mean = (images @ luma_weights).mean(axis=(1, 2))[:, None, None, None]
    np.testing.assert_allclose(out, mean + 0.5 * (images - mean), atol=1e-3)
    # Saturation s (torchvision): blend with the pixel's luma. Pink (1, .5, .5) has luma ~0.6495.
    pink = np.tile(np.array([1.0, 0.5, 0.5], np.float32), (1, 2, 2, 1))
    luma = float(pink[0, 0, 0] @ luma_weights)
    half = op.apply(pink, jitter_params([1, 1, 0.5, 0])).numpy()[0, 0, 0]
    np.testing.assert_allclose(half, luma + 0.5 * (pink[0, 0, 0] - luma), atol=1e-3)
    np.testing.assert_allclose(op.apply(pink, jitter_params([1, 1, 0.0, 0])).numpy()[0, 0, 0], [luma] * 3, atol=1e-3)
    # Hue h in turns: red + 1/3 turn is green, red + 0.1 turn is (1, 0.6, 0), red - 0.1 is (1, 0, 0.6).
    red = np.tile(np.array([1.0, 0.0, 0.0], np.float32), (1, 2, 2, 1))
    for h, rgb in [(1 / 3, [0, 1, 0]), (0.1, [1, 0.6, 0]), (-0.1, [1, 0, 0.6])]:
        np.testing.assert_allclose(op.apply(red, jitter_params([1, 1, 1, h])).numpy()[0, 0, 0], rgb, atol=1e-4)


def _jitter_in_sequence(op, images, factors, order):
    """Reference: one adjustment at a time, in `order`, each with the others at identity."""
    for j in order:
        single = [1.0, 1.0, 1.0, 0.0]
        single[j] = factors[j]
        images = op.apply(images, jitter_params([single] * len(images))).numpy()
    return images


def test_color_jitter_runs_adjustments_in_the_recorded_order():
    op = ColorJitter()
    images = random_images(2, (16, 16))
    factors = [1.7, 0.4, 1.8, 0.2]
    order = [1, 2, 0, 3]  # contrast, saturation, brightness, hue
    inverse = list(np.argsort(order))  # [2, 0, 1, 3]: what a mix-up of "position" and "op" would run
    expected = _jitter_in_sequence(op, images, factors, order)
    other = _jitter_in_sequence(op, images, factors, inverse)
    assert np.abs(expected - other).max() > 0.05, "test pattern: the two orders must give different images"
    out = op.apply(images, jitter_params([factors] * 2, [order] * 2)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # Two different orders recorded in one batch give different images for the same input.
    both = op.apply(images[[0, 0]], jitter_params([factors] * 2, [order, inverse])).numpy()
    assert np.abs(both[0] - both[1]).max() > 0.05


def test_color_jitter_pil_convention_rounds_like_pillow():
    """convention="pil": uint8 arithmetic of Pillow's ImageEnhance blends and "L" conversion (NumPy reference)."""
    images = np.round(random_images(3, (10, 10)) * 255) / 255
    q = np.round(images * 255).astype(np.int64)
    luma = (19595 * q[..., 0] + 38470 * q[..., 1] + 7471 * q[..., 2] + (1 << 15)) >> 16  # (B, H, W)
    f = np.array([0.6, 1.0, 1.4], np.float32)[:, None, None, None]

    def blend(degenerate, factor):  # in float32, as Pillow's C code
        q32, d32 = q.astype(np.float32), np.float32(degenerate)
        return np.floor(np.clip(d32 + factor * (q32 - d32), 0, 255)) / 255

    mean = np.floor(luma.mean(axis=(1, 2)) + 0.5)[:, None, None, None]
    expected = {
        "brightness": blend(np.float32(0), f),
        "contrast": blend(mean.astype(np.float32), f),
        "saturation": blend(luma[..., None].astype(np.float32), f),
    }
    op = ColorJitter(convention="pil")
    for j, name in enumerate(("brightness", "contrast", "saturation")):
        factors = np.tile([[1.0, 1.0, 1.0, 0.0]], (3, 1))
        factors[:, j] = f[:, 0, 0, 0]
        order = np.tile([j] + [k for k in range(4) if k != j], (3, 1))  # op j first; the identities keep levels
        out = op.apply(images, jitter_params(factors, order)).numpy()
        # The hue op at 0 still runs Pillow's lossy uint8 HSV round trip: compare on the first op's output alone.
        first = getattr(color_ops, f"pil_adjust_{name}")(images, f[:, 0, 0, 0]).numpy()
        np.testing.assert_allclose(first, expected[name], atol=1e-6, err_msg=name)
        assert np.all(np.abs(out * 255 - np.round(out * 255)) < 1e-3), f"{name}: not uint8 levels"
    # Hue: pure colours move by whole sectors, greys stay.
    pure = np.array([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]]]], np.float32)
    out = color_ops.pil_adjust_hue(pure, np.array([1 / 3], np.float32)).numpy()
    np.testing.assert_allclose(out[0, 0], [[0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]], atol=1 / 255)
    with pytest.raises(ValueError, match="convention.*'uint8'"):
        ColorJitter(convention="uint8")
    config = op.get_config()
    assert config["convention"] == "pil" and ColorJitter.from_config(config).convention == "pil"


def test_color_jitter_pil_convention_equals_pillow():
    """Bit-exact with Pillow itself (ImageEnhance and its HSV, as torchvision's ColorJitter on PIL images)."""
    pil = pytest.importorskip("PIL.Image")
    from PIL import ImageEnhance

    images = np.round(random_images(2, (12, 12), seed=3) * 255).astype(np.uint8)
    factors = [(1.3, 0.7, 1.2, 0.08), (0.8, 1.35, 0.65, -0.06)]
    orders = [(3, 0, 2, 1), (1, 3, 2, 0)]

    def pillow(img, fac, order):
        img = pil.fromarray(img)
        for k in order:
            if k == 3:
                h, s, v = img.convert("HSV").split()
                h = np.asarray(h, np.uint8) + np.int32(fac[3] * 255).astype(np.uint8)
                img = pil.merge("HSV", (pil.fromarray(h, "L"), s, v)).convert("RGB")
            else:
                enhancer = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)[k]
                img = enhancer(img).enhance(fac[k])
        return np.asarray(img, np.float32) / 255

    out = ColorJitter(convention="pil").apply(images.astype(np.float32) / 255, jitter_params(factors, orders))
    for i in range(2):
        np.testing.assert_array_equal(out.numpy()[i], pillow(images[i], factors[i], orders[i]))


# --- AugMix -----------------------------------------------------------------------------------
def test_augmix_identity_params_and_zero_mix_return_the_input():
    images = random_images(16, (16, 16))
    op = AugMix()
    assert np.array_equal(op.apply(images, op.identity_params(16)).numpy(), images)
    params = dict(op.sample(16, 11))
    params["augmix_mix"] = tf.zeros([16, 1])
    assert np.array_equal(op.apply(images, params).numpy(), images), "mix 0 must return the original image"
    # And with the sampled mix it does change the images.
    assert not np.allclose(op.apply(images, op.sample(16, 11)).numpy(), images, atol=1e-3)


def test_augmix_params_mean_what_they_say():
    """One chain with one solarize step at magnitude m is solarize at 1 - |m|; weights and mix blend."""
    op = AugMix(width=2, depth=1)
    images = random_images(2, (16, 16))
    solar = np.where(images >= 0.6, 1 - images, images)
    params = {
        "augmix_ops": tf.constant([[[AUGMIX_OPS.index("solarize")], [NO_OP]]] * 2, tf.int32),
        "augmix_mags": tf.constant([[[-0.4], [0.0]]] * 2, tf.float32),
        "augmix_weights": tf.constant([[1.0, 0.0], [0.25, 0.75]], tf.float32),
        "augmix_mix": tf.constant([[1.0], [0.5]], tf.float32),
    }
    out = op.apply(images, params).numpy()
    np.testing.assert_allclose(out[0], solar[0], atol=1e-5)
    mixed = 0.25 * solar[1] + 0.75 * images[1]
    np.testing.assert_allclose(out[1], 0.5 * images[1] + 0.5 * mixed, atol=1e-5)


def one_augmix_op(name, mags, op_names=AUGMIX_ALL_OPS):
    """Params of a width-1, depth-1 AugMix that runs op `name` at magnitude mags[i] on image i, unmixed."""
    n = len(mags)
    return {
        "augmix_ops": tf.fill([n, 1, 1], op_names.index(name)),
        "augmix_mags": tf.constant(np.asarray(mags, np.float32)[:, None, None]),
        "augmix_weights": tf.ones([n, 1]),
        "augmix_mix": tf.ones([n, 1]),
    }


def test_augmix_all_ops_adds_torchvision_enhance_ops():
    """all_ops: brightness, color, contrast, sharpness with factor 1 + 0.9 m, as torchvision's AugMix."""
    assert AUGMIX_ALL_OPS == AUGMIX_OPS + ("brightness", "color", "contrast", "sharpness")
    op = AugMix(width=1, depth=1, all_ops=True)
    assert op.no_op == 13 and op.param_specs()[0].num_classes == 14
    assert AugMix().no_op == NO_OP == 9
    images = random_images(2, (12, 12))
    mags = [0.3, -0.2]
    f = 1.0 + 0.9 * np.array(mags)[:, None, None, None]
    out = op.apply(images, one_augmix_op("brightness", mags)).numpy()
    np.testing.assert_allclose(out, np.clip(images * f, 0, 1), atol=1e-6)
    gray = (images @ np.array([0.2989, 0.587, 0.114]))[..., None]
    out = op.apply(images, one_augmix_op("color", mags)).numpy()
    np.testing.assert_allclose(out, np.clip(f * images + (1 - f) * gray, 0, 1), atol=1e-5)
    mean = gray.mean(axis=(1, 2, 3), keepdims=True)
    out = op.apply(images, one_augmix_op("contrast", mags)).numpy()
    np.testing.assert_allclose(out, np.clip(f * images + (1 - f) * mean, 0, 1), atol=1e-5)
    # Sharpness: blend with the 3x3 (1, 5 in the centre) / 13 smoothing; the border keeps the original.
    kernel = np.ones((3, 3)) / 13.0
    kernel[1, 1] = 5.0 / 13.0
    smooth = images.astype(np.float64).copy()
    smooth[:, 1:-1, 1:-1] = sum(
        kernel[dy, dx] * images[:, dy : dy + 10, dx : dx + 10] for dy in range(3) for dx in range(3)
    )
    out = op.apply(images, one_augmix_op("sharpness", mags)).numpy()
    np.testing.assert_allclose(out, np.clip(f * images + (1 - f) * smooth, 0, 1), atol=1e-5)
    # The default op list cannot reach them: its op indices stop at 8 and 9 means unused.
    with pytest.raises(ValueError, match="all_ops"):
        AugMix(all_ops=1)


def test_augmix_whole_pixels_and_shear_about_the_corner():
    """whole_pixels truncates m W / 3 toward zero; shears turn about the top-left pixel edge (paper, torchvision)."""
    images = random_images(2, (12, 12))
    mags = [0.3, -0.3]  # 0.3 * 12 / 3 = 1.2 -> 1 pixel right; -1.2 -> 1 pixel left
    whole = AugMix(width=1, depth=1, whole_pixels=True)
    out = whole.apply(images, one_augmix_op("translate_x", mags, AUGMIX_OPS)).numpy()
    np.testing.assert_allclose(out[0, :, 1:], images[0, :, :-1], atol=1e-6)
    np.testing.assert_allclose(out[1, :, :-1], images[1, :, 1:], atol=1e-6)
    np.testing.assert_array_equal(out[0, :, 0], 0.0)
    sub = AugMix(width=1, depth=1).apply(images, one_augmix_op("translate_x", mags, AUGMIX_OPS)).numpy()
    np.testing.assert_allclose(sub[0, :, 2:], 0.8 * images[0, :, 1:-1] + 0.2 * images[0, :, :-2], atol=1e-5)
    assert whole.get_config()["whole_pixels"] and AugMix.from_config(whole.get_config()).whole_pixels
    # Shear x: output (x, y) reads input x + s (y + 0.5) in pixel indices, s = 0.3 m.
    m = 0.2
    out = AugMix(width=1, depth=1).apply(images[:1], one_augmix_op("shear_x", [m], AUGMIX_OPS)).numpy()[0]
    s = 0.3 * m
    for y in range(12):
        xs = np.arange(12) + s * (y + 0.5)
        inside = xs <= 11
        x0 = np.floor(xs[inside]).astype(int)
        frac = (xs[inside] - x0)[:, None]
        nxt = np.minimum(x0 + 1, 11)
        expected = (1 - frac) * images[0, y, x0] + frac * images[0, y, nxt]
        np.testing.assert_allclose(out[y, inside], expected, atol=1e-5, err_msg=f"row {y}")


# --- RandomApply / RandomChoice / Compose -----------------------------------------------------
def test_random_apply_changes_exactly_the_applied_images():
    images = random_images(32, (16, 16))
    inner = ColorJitter()
    op = RandomApply(inner, p=0.5)
    out, params = op(images, seed=12)
    applied = params["color_applied"].numpy()[:, 0] > 0.5
    assert 0 < applied.sum() < 32
    assert np.array_equal(out.numpy()[~applied], images[~applied])
    expected = inner.apply(images, params).numpy()
    np.testing.assert_allclose(out.numpy()[applied], expected[applied], atol=1e-6)
    assert np.all(np.abs(out.numpy()[applied] - images[applied]).max(axis=(1, 2, 3)) > 1e-3)


def test_random_choice_runs_the_recorded_branch_per_image():
    ops = [Rotation(30.0), Translation(4.0), Grayscale(p=1.0)]
    op = RandomChoice(ops, weights=[1, 1, 1])
    images = random_images(24, (16, 16))
    out, params = op(images, seed=13)
    choice = params["choice"].numpy()[:, 0]
    assert set(choice) == {0, 1, 2}
    for i, c in enumerate(choice):
        row = {k: v[i : i + 1] for k, v in params.items()}
        np.testing.assert_allclose(out.numpy()[i], ops[c].apply(images[i : i + 1], row).numpy()[0], atol=1e-5)


def test_compose_chains_ops_and_passes_each_its_input_size():
    """The second crop of a chain sees the first crop's (non-square) output, so its ratio is in its pixels."""
    op = Compose([RandomResizedCrop((20, 30)), RandomResizedCrop(12, name="crop2"), Flip(p=0.5)])
    images = random_images(16, (40, 40))
    out, params = op(images, seed=14)
    assert out.shape == (16, 12, 12, 3) and op.output_size((40, 40)) == (12, 12)
    p = to_numpy(params)
    _, _, h2, w2 = p["crop2"].T
    np.testing.assert_allclose(p["crop2_ratio"][:, 0], (w2 * 30) / (h2 * 20), rtol=1e-5)
    step = op.ops[0].apply(images, params)
    step = op.ops[1].apply(step, params)
    assert np.array_equal(out.numpy(), op.ops[2].apply(step, params).numpy())
    # Ops inside a Compose draw from different seeds: two Flips with different names disagree somewhere.
    two = Compose([Flip(name="f1"), Flip(name="f2")]).sample(64, 0)
    assert not np.array_equal(two["f1"].numpy(), two["f2"].numpy())
