"""RoIAlign for axis-aligned boxes, computed separably as two interpolation matrices and one einsum."""

from __future__ import annotations

import tensorflow as tf


def _samples_per_bin(extent: tf.Tensor, output_size: int, sampling_ratio: int, size) -> tuple[tf.Tensor, object]:
    """`(N,)` float32 samples per bin along one axis and a bound on them (an int, or a scalar tensor).

    `sampling_ratio >= 1`: that many for every box. `-1`: torchvision's adaptive rule,
    `ceil(extent / output_size)` per box (0 for an empty box, which then pools zeros), evaluated
    with at most `ceil((size + 1) / output_size)` samples when the map's side is static, so XLA
    compiles it (exact for every box that spans at most the map plus one cell).
    """
    if sampling_ratio > 0:
        return tf.fill(tf.shape(extent), float(sampling_ratio)), sampling_ratio
    count = tf.math.ceil(tf.maximum(extent, 0.0) / float(output_size))
    if isinstance(size, int):
        bound = max(1, -(-(size + 1) // output_size))
        return tf.minimum(count, float(bound)), bound
    return count, tf.maximum(tf.cast(tf.reduce_max(count), tf.int32), 1)


def _axis_weights(
    start: tf.Tensor, end: tf.Tensor, size, output_size: int, sampling_ratio: int, aligned: bool = True
) -> tf.Tensor:
    """`(N, k, size)` float32: row i is the mean over the bin's samples of their bilinear weights along one axis.

    `start`, `end` `(N,)` are the box edges in grid units (pixel corners). torchvision's `aligned=True`
    shifts them by -0.5 into index space (`aligned=False` does not, and stretches a box shorter than
    one cell to one cell); a sample at `t < -1` or `t > size` weighs 0, otherwise it is clamped to
    `[0, size - 1]` and spread over its two neighbouring indices (the hat function).
    """
    k = output_size
    if aligned:
        start, end = start - 0.5, end - 0.5
    extent = end - start
    if not aligned:
        extent = tf.maximum(extent, 1.0)
    bin_size = extent / k  # (N,)
    samples, bound = _samples_per_bin(extent, k, sampling_ratio, size)  # (N,), max samples
    index = tf.range(bound, dtype=tf.float32)  # (S,)
    offsets = (index[None, :] + 0.5) / tf.maximum(samples[:, None], 1.0)  # (N, S)
    used = tf.cast(index[None, :] < samples[:, None], tf.float32)  # (N, S)
    bins = tf.range(k, dtype=tf.float32)  # (k,)
    t = start[:, None, None] + (bins[None, :, None] + offsets[:, None, :]) * bin_size[:, None, None]  # (N, k, S)
    size_f = tf.cast(size, tf.float32)
    valid = tf.cast((t >= -1.0) & (t <= size_f), tf.float32) * used[:, None, :]
    t = tf.clip_by_value(t, 0.0, size_f - 1.0)
    grid = tf.range(size, dtype=tf.float32)  # (size,)
    weights = tf.nn.relu(1.0 - tf.abs(t[..., None] - grid)) * valid[..., None]  # (N, k, S, size)
    return tf.reduce_sum(weights, axis=2) / tf.maximum(samples, 1.0)[:, None, None]


def roi_align(feature_map, boxes, output_size: int, sampling_ratio: int = 2, aligned: bool = True) -> tf.Tensor:
    """RoIAlign (He et al., ICCV 2017, "Mask R-CNN") of one box per map, as torchvision's `roi_align`.

    Box n, in grid units `(y0, x0, y1, x1) = boxes[n] * (h, w, h, w)`, shifted by -1/2 into index
    space, is cut into a k x k grid of bins; bin (i, j) averages s x s bilinear samples at

        y = y0 - 1/2 + (i + (a + 1/2) / s) (y1 - y0) / k,   x = x0 - 1/2 + (j + (b + 1/2) / s) (x1 - x0) / k

    for a, b in 0..s-1. Boundary rule (torchvision's): a sample with y < -1 or y > h (or x < -1, x > w)
    contributes 0; otherwise y is clamped to >= 0, and y >= h - 1 reads row h - 1 only (same for x).
    This equals `torchvision.ops.roi_align(NCHW map, xyxy boxes in grid units, k, spatial_scale=1,
    sampling_ratio=s, aligned=aligned)`. With `sampling_ratio=-1` (torchvision's default, which
    GTSA uses) s is chosen per box and axis, `s_y = ceil((y1 - y0) h / k)` (the same for x): one
    sample per cell of the map a bin covers, at least 1 (a box of zero extent pools zeros).
    `aligned=False` (the original Mask R-CNN) skips the -1/2 shift and stretches a box shorter
    than one cell to one cell.

    Boxes are normalised, so `spatial_scale` has no counterpart: a box in image pixels divided by
    the image side is the same box on any feature grid of that image (torchvision's pixel boxes
    with `spatial_scale=1 / stride` are the same when the image side is a multiple of the stride).

    Boxes are axis-aligned, so the bilinear weights factorise: with `Ay` `(N, k, h)` and `Ax`
    `(N, k, w)` the per-bin means of the weights along each axis,

        out[n, i, j, c] = sum_{y, x} Ay[n, i, y] F[n, y, x, c] Ax[n, j, x].

    Differentiable with respect to the map; works in graph mode with a dynamic batch and under XLA.
    The weights are computed in float32 and cast to the map's dtype (float16/bfloat16 maps stay so).

    Args:
        feature_map: `(N, h, w, C)` float feature map (NHWC).
        boxes: `(N, 4)` boxes `(y0, x0, y1, x1)` normalised to the map (0..1 spans the whole map);
            box n pools map n. Boxes may overhang the map.
        output_size: k, the side of the output grid (>= 1).
        sampling_ratio: s, samples per bin along each axis (>= 1), or -1 for torchvision's
            adaptive count above (evaluated with at most `ceil((side + 1) / k)` samples when the
            map's side is static, which covers every box no larger than the map plus one cell).
        aligned: torchvision's `aligned` (True: pixel-centre alignment, the -1/2 shift).

    Returns:
        `(N, k, k, C)` tensor of the map's dtype.

    Example:
    >>> import numpy as np
    >>> fmap = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    >>> whole = np.array([[0.0, 0.0, 1.0, 1.0]], "float32")
    >>> float(roi_align(fmap, whole, output_size=1)[0, 0, 0, 0])
    2.5
    >>> roi_align(fmap, whole, output_size=2, sampling_ratio=1)[0, :, :, 0].numpy().tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    if int(output_size) < 1:
        raise ValueError(f"roi_align: output_size must be >= 1; received output_size={output_size}.")
    if int(sampling_ratio) < 1 and int(sampling_ratio) != -1:
        raise ValueError(
            f"roi_align: sampling_ratio must be >= 1, or -1 for torchvision's adaptive count; "
            f"received sampling_ratio={sampling_ratio}."
        )
    feature_map = tf.convert_to_tensor(feature_map)
    if not feature_map.dtype.is_floating:
        raise ValueError(f"roi_align: `feature_map` must be a float tensor; received dtype {feature_map.dtype.name}.")
    boxes = tf.cast(tf.convert_to_tensor(boxes), tf.float32)
    if feature_map.shape.rank != 4:
        raise ValueError(
            f"roi_align: `feature_map` must have shape (N, h, w, C); received feature_map.shape={feature_map.shape}."
        )
    if boxes.shape.rank != 2 or boxes.shape[-1] not in (None, 4):
        raise ValueError(f"roi_align: `boxes` must have shape (N, 4); received boxes.shape={boxes.shape}.")
    if not feature_map.shape[:1].is_compatible_with(boxes.shape[:1]):
        raise ValueError(
            "roi_align: `boxes` needs one box per map, (N, 4) for a (N, h, w, C) map; "
            f"received feature_map.shape={feature_map.shape} and boxes.shape={boxes.shape}."
        )
    k, s = int(output_size), int(sampling_ratio)
    shape = tf.shape(feature_map)
    h = feature_map.shape[1] if feature_map.shape[1] is not None else shape[1]
    w = feature_map.shape[2] if feature_map.shape[2] is not None else shape[2]
    y0, x0, y1, x1 = tf.unstack(boxes, num=4, axis=1)
    h_f, w_f = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    ay = _axis_weights(y0 * h_f, y1 * h_f, h, k, s, bool(aligned))  # (N, k, h)
    ax = _axis_weights(x0 * w_f, x1 * w_f, w, k, s, bool(aligned))  # (N, k, w)
    ay, ax = tf.cast(ay, feature_map.dtype), tf.cast(ax, feature_map.dtype)
    return tf.einsum("nih,nhwc,njw->nijc", ay, feature_map, ax)
