"""`roi_align` against a per-sample NumPy loop of torchvision's RoIAlign (aligned=True)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_eqssl.nn.roi_align import roi_align


# --- reference: torchvision's roi_align_forward, one bilinear sample at a time ---------------
def _bilinear(img: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision's `bilinear_interpolate` on an `(h, w, C)` map, boundary rule included."""
    h, w = img.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(img.shape[2])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_low = y_high = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_low = x_high = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * img[y_low, x_low]
        + hy * lx * img[y_low, x_high]
        + ly * hx * img[y_high, x_low]
        + ly * lx * img[y_high, x_high]
    )


def roi_align_reference(fmap: np.ndarray, boxes: np.ndarray, k: int, s: int, aligned: bool = True) -> np.ndarray:
    """`(N, k, k, C)`: torchvision roi_align(spatial_scale=1) of normalised yxyx boxes.

    `s = -1`: torchvision's adaptive count, `ceil(roi_h / k)` by `ceil(roi_w / k)` samples per bin.
    """
    fmap, boxes = np.asarray(fmap, np.float64), np.asarray(boxes, np.float64)
    n, h, w, c = fmap.shape
    out = np.zeros((n, k, k, c))
    shift = 0.5 if aligned else 0.0
    for b in range(n):
        y0, x0, y1, x1 = boxes[b] * [h, w, h, w]
        start_y, start_x = y0 - shift, x0 - shift
        roi_h, roi_w = y1 - y0, x1 - x0
        if not aligned:
            roi_h, roi_w = max(roi_h, 1.0), max(roi_w, 1.0)
        bin_h, bin_w = roi_h / k, roi_w / k
        sy = s if s > 0 else int(math.ceil(roi_h / k))
        sx = s if s > 0 else int(math.ceil(roi_w / k))
        count = max(sy * sx, 1)
        for i in range(k):
            for j in range(k):
                acc = np.zeros(c)
                for iy in range(sy):
                    y = start_y + i * bin_h + (iy + 0.5) * bin_h / sy
                    for ix in range(sx):
                        x = start_x + j * bin_w + (ix + 0.5) * bin_w / sx
                        acc += _bilinear(fmap[b], y, x)
                out[b, i, j] = acc / count
    return out


def _random_boxes(rng, n: int) -> np.ndarray:
    """Boxes inside, touching and overhanging the map (normalised yxyx)."""
    start = rng.uniform(-0.3, 0.8, size=(n, 2))
    extent = rng.uniform(0.1, 0.9, size=(n, 2))
    return np.concatenate([start, start + extent], axis=1).astype("float32")


BORDER_BOXES = np.array(
    [
        [0.0, 0.0, 1.0, 1.0],  # the whole map
        [-0.23, -0.17, 1.21, 1.13],  # overhangs every side
        [0.52, 0.61, 1.0, 1.0],  # touches the bottom-right corner
        [0.83, -0.41, 1.37, 0.29],  # overhangs the bottom and the left
        [1.07, 1.11, 1.33, 1.29],  # entirely outside
        [0.31, 0.42, 0.31, 0.58],  # zero height
    ],
    "float32",
)


# --- value against the reference --------------------------------------------------------------
@pytest.mark.parametrize("hw", [(7, 7), (5, 6)])
@pytest.mark.parametrize("output_size", [1, 3, 4])
@pytest.mark.parametrize("sampling_ratio", [1, 2])
def test_matches_torchvision_loop_on_random_boxes(rng, hw, output_size, sampling_ratio):
    fmap = rng.normal(size=(3, *hw, 4)).astype("float32")
    boxes = _random_boxes(rng, 3)
    out = roi_align(fmap, boxes, output_size, sampling_ratio)
    assert out.shape == (3, output_size, output_size, 4) and out.dtype == tf.float32
    expected = roi_align_reference(fmap, boxes, output_size, sampling_ratio)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("hw", [(7, 7), (5, 6)])
@pytest.mark.parametrize("output_size", [1, 3, 4])
@pytest.mark.parametrize("sampling_ratio", [1, 2])
def test_matches_torchvision_loop_on_border_boxes(rng, hw, output_size, sampling_ratio):
    fmap = rng.normal(size=(len(BORDER_BOXES), *hw, 4)).astype("float32")
    out = roi_align(fmap, BORDER_BOXES, output_size, sampling_ratio)
    expected = roi_align_reference(fmap, BORDER_BOXES, output_size, sampling_ratio)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_reference_boundary_rule_is_exercised(rng):
    # The fixed border boxes reach every branch of the rule: zero samples, clamped samples, edge rows.
    fmap = rng.normal(size=(len(BORDER_BOXES), 7, 7, 4)).astype("float32")
    expected = roi_align_reference(fmap, BORDER_BOXES, 4, 2)
    assert np.all(expected[4] == 0.0)  # outside the map: every sample contributes 0
    assert np.any(expected[3] == 0.0) and np.any(expected[3] != 0.0)  # partly outside


@pytest.mark.parametrize("size", [1, 4, 7])
def test_whole_map_at_map_size_is_the_map(rng, size):
    # With k = h = w and one sample per bin, the bin centres fall exactly on the cell centres.
    fmap = rng.normal(size=(2, size, size, 3)).astype("float32")
    boxes = np.tile(np.array([[0.0, 0.0, 1.0, 1.0]], "float32"), (2, 1))
    np.testing.assert_array_equal(roi_align(fmap, boxes, size, sampling_ratio=1).numpy(), fmap)


# --- graph mode, XLA, gradients, dtypes ------------------------------------------------------
def test_graph_mode_with_unknown_batch(rng):
    fmap = rng.normal(size=(3, 5, 6, 4)).astype("float32")
    boxes = _random_boxes(rng, 3)
    fn = tf.function(
        lambda f, b: roi_align(f, b, 3, 2),
        input_signature=[tf.TensorSpec((None, 5, 6, 4)), tf.TensorSpec((None, 4))],
    )
    out = fn(fmap, boxes)
    np.testing.assert_allclose(out.numpy(), roi_align_reference(fmap, boxes, 3, 2), atol=1e-5)
    assert fn.get_concrete_function().structured_outputs.shape.as_list() == [None, 3, 3, 4]


def test_graph_mode_with_unknown_spatial_size(rng):
    fmap = rng.normal(size=(2, 5, 6, 4)).astype("float32")
    boxes = _random_boxes(rng, 2)
    fn = tf.function(
        lambda f, b: roi_align(f, b, 4, 1),
        input_signature=[tf.TensorSpec((None, None, None, 4)), tf.TensorSpec((None, 4))],
    )
    np.testing.assert_allclose(fn(fmap, boxes).numpy(), roi_align_reference(fmap, boxes, 4, 1), atol=1e-5)


def test_xla(rng):
    fmap = rng.normal(size=(3, 7, 7, 4)).astype("float32")
    boxes = _random_boxes(rng, 3)
    out = tf.function(lambda f, b: roi_align(f, b, 3, 2), jit_compile=True)(fmap, boxes)
    np.testing.assert_allclose(out.numpy(), roi_align_reference(fmap, boxes, 3, 2), atol=1e-5)


def test_gradient_wrt_map_is_finite_and_non_zero(rng):
    fmap = tf.Variable(rng.normal(size=(3, 7, 7, 4)).astype("float32"))
    boxes = _random_boxes(rng, 3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(roi_align(fmap, boxes, 3, 2) ** 2)
    grad = tape.gradient(loss, fmap)
    assert grad is not None
    assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0)


def test_gradient_is_the_interpolation_weights(rng):
    # d out[n, i, j, c] / d F[n, y, x, c] = Ay[n, i, y] Ax[n, j, x]: summing over (i, j) gives the
    # total weight each map cell receives, which the reference reproduces with a one-hot map.
    fmap = tf.Variable(np.zeros((1, 5, 6, 1), "float32"))
    boxes = np.array([[0.1, -0.2, 0.9, 0.7]], "float32")
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(roi_align(fmap, boxes, 3, 2))
    grad = tape.gradient(total, fmap).numpy()
    expected = np.zeros_like(grad)
    for y in range(5):
        for x in range(6):
            onehot = np.zeros((1, 5, 6, 1))
            onehot[0, y, x, 0] = 1.0
            expected[0, y, x, 0] = roi_align_reference(onehot, boxes, 3, 2).sum()
    np.testing.assert_allclose(grad, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_map_keeps_its_dtype(rng, dtype):
    fmap = rng.normal(size=(3, 7, 7, 4)).astype("float32")
    boxes = _random_boxes(rng, 3)
    low = tf.cast(fmap, dtype)
    out = roi_align(low, boxes, 3, 2)
    assert out.dtype == dtype
    expected = roi_align_reference(tf.cast(low, tf.float32).numpy(), boxes, 3, 2)
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), expected, atol=0.1 if dtype == tf.bfloat16 else 0.01)


# --- torchvision's adaptive sampling (sampling_ratio=-1) and aligned=False ---------------------
@pytest.mark.parametrize("hw", [(12, 12), (14, 9), (6, 6)])
@pytest.mark.parametrize("output_size", [1, 3, 4, 10])
@pytest.mark.parametrize("aligned", [True, False])
def test_adaptive_sampling_matches_torchvision_loop(rng, hw, output_size, aligned):
    fmap = rng.normal(size=(6, *hw, 3)).astype("float32")
    boxes = np.concatenate([_random_boxes(rng, 6), BORDER_BOXES[[0, 2, 5]]], axis=0)
    fmap = np.concatenate([fmap, fmap[:3]], axis=0)
    out = roi_align(fmap, boxes, output_size, sampling_ratio=-1, aligned=aligned)
    expected = roi_align_reference(fmap, boxes, output_size, -1, aligned=aligned)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_adaptive_sampling_varies_per_box(rng):
    """A wide box gets more samples than a narrow one: the reference with s fixed differs from the adaptive one."""
    fmap = rng.normal(size=(2, 12, 12, 2)).astype("float32")
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.2, 0.3, 0.4, 0.45]], "float32")
    out = roi_align(fmap, boxes, 2, sampling_ratio=-1).numpy()
    np.testing.assert_allclose(out[0], roi_align_reference(fmap[:1], boxes[:1], 2, 6)[0], atol=1e-5)
    np.testing.assert_allclose(out[1], roi_align_reference(fmap[1:], boxes[1:], 2, 2)[0], atol=1e-5)
    assert not np.allclose(out[0], roi_align_reference(fmap[:1], boxes[:1], 2, 2)[0], atol=1e-3)


def test_adaptive_sampling_dynamic_size_and_xla(rng):
    fmap = rng.normal(size=(3, 9, 7, 2)).astype("float32")
    boxes = _random_boxes(rng, 3)
    expected = roi_align_reference(fmap, boxes, 3, -1)
    dynamic = tf.function(
        lambda m, b: roi_align(m, b, 3, sampling_ratio=-1),
        input_signature=[tf.TensorSpec((None, None, None, 2)), tf.TensorSpec((None, 4))],
    )
    np.testing.assert_allclose(dynamic(fmap, boxes).numpy(), expected, atol=1e-5)
    inside = np.clip(boxes, 0.0, 1.0)
    xla = tf.function(lambda m, b: roi_align(m, b, 3, sampling_ratio=-1), jit_compile=True)
    np.testing.assert_allclose(xla(fmap, inside).numpy(), roi_align_reference(fmap, inside, 3, -1), atol=1e-5)


def test_aligned_false_matches_torchvision_loop_fixed_ratio(rng):
    fmap = rng.normal(size=(6, 7, 7, 2)).astype("float32")
    out = roi_align(fmap, BORDER_BOXES, 3, sampling_ratio=2, aligned=False)
    np.testing.assert_allclose(out.numpy(), roi_align_reference(fmap, BORDER_BOXES, 3, 2, aligned=False), atol=1e-5)


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fmap_shape, boxes_shape, kwargs, match",
    [
        ((3, 7, 7), (3, 4), {}, r"feature_map.*\(N, h, w, C\).*received feature_map.shape=\(3, 7, 7\)"),
        ((3, 7, 7, 4), (3, 5), {}, r"boxes.*\(N, 4\).*received boxes.shape=\(3, 5\)"),
        ((3, 7, 7, 4), (3, 4, 1), {}, r"boxes.*\(N, 4\)"),
        ((3, 7, 7, 4), (2, 4), {}, r"one box per map.*\(3, 7, 7, 4\).*\(2, 4\)"),
        ((3, 7, 7, 4), (3, 4), {"output_size": 0}, r"output_size must be >= 1; received output_size=0"),
        ((3, 7, 7, 4), (3, 4), {"sampling_ratio": 0}, r"sampling_ratio must be >= 1, or -1.*received sampling_ratio=0"),
        ((3, 7, 7, 4), (3, 4), {"sampling_ratio": -2}, r"must be >= 1, or -1.*received sampling_ratio=-2"),
    ],
)
def test_bad_input_raises(fmap_shape, boxes_shape, kwargs, match):
    args = {"output_size": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        roi_align(np.zeros(fmap_shape, "float32"), np.zeros(boxes_shape, "float32"), **args)


def test_integer_map_raises():
    with pytest.raises(ValueError, match=r"feature_map.*float.*int32"):
        roi_align(np.zeros((1, 2, 2, 1), "int32"), np.zeros((1, 4), "float32"), 1)
