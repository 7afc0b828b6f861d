"""GTSA's crop loss: negative cosine between the student's and the rotated teacher's RoIAlign of an overlap box."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.augment.geometric import rot90
from keras_eqssl.losses import distributed
from keras_eqssl.nn.roi_align import roi_align


def roi_cosine(
    student_map,
    teacher_map,
    student_boxes,
    teacher_boxes,
    quarter_turns,
    valid=None,
    output_size: int = 4,
    sampling_ratio: int = -1,
) -> tf.Tensor:
    """Negative cosine, cell by cell, between two views' features of the region both crops saw (GTSA, Kim et al. 2023).

    Each crop of an image was rotated by its own k * 90 degrees (counter-clockwise). The
    region two crops share is a box in each crop's rotated frame. RoIAlign pools a k x k grid
    from each map over its box; the teacher's grid is then turned by the student's rotation
    minus the teacher's, so both grids are laid out the same way:

        S = roi_align(student_map, student_boxes),  T = rot90(roi_align(sg(teacher_map), teacher_boxes), turns)
        loss = mean_{n, i, j} -cos(S[n, i, j, :], T[n, i, j, :])

    over the examples whose crops overlap (`valid`). The teacher gets no gradient.

    Args:
        student_map: `(B, h, w, C)` student predictor map.
        teacher_map: `(B, h', w', C)` teacher projector map.
        student_boxes, teacher_boxes: `(B, 4)` the shared region `(y0, x0, y1, x1)`, normalised
            to each map's (rotated) frame.
        quarter_turns: `(B,)` or `(B, 1)` int, the student's rotation minus the teacher's, in
            quarter turns counter-clockwise (any integer; taken mod 4).
        valid: `(B,)` 1 where the crops overlap, 0 where they do not (None: all).
        output_size: k, the RoIAlign grid (GTSA: 10 for a 14 x 14 map, 4 for 6 x 6).
        sampling_ratio: samples per bin along each axis, or -1 (GTSA's) for torchvision's adaptive
            count (see `roi_align`).

    Returns:
        Scalar float32; the mean over valid examples of the global batch (`/ R` per replica), 0
        when no example is valid.

    Example:
    >>> import numpy as np
    >>> m = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype("float32")
    >>> box = np.array([[0.0, 0.0, 1.0, 1.0]], "float32")
    >>> turned = np.rot90(m, 1, axes=(1, 2)).copy()  # the student saw the crop turned once
    >>> round(float(roi_cosine(turned, m, box, box, [1], output_size=4, sampling_ratio=1)), 4)
    -1.0
    """
    student = roi_align(student_map, student_boxes, output_size, sampling_ratio)
    teacher = roi_align(ops.stop_gradient(teacher_map), teacher_boxes, output_size, sampling_ratio)
    teacher = rot90(teacher, quarter_turns)
    s = ops.normalize(ops.cast(student, "float32"), axis=-1)
    t = ops.normalize(ops.cast(teacher, "float32"), axis=-1)
    per_example = -ops.mean(ops.sum(s * t, axis=-1), axis=(1, 2))  # (B,)
    valid = ops.ones_like(per_example) if valid is None else ops.reshape(ops.cast(valid, "float32"), (-1,))
    total = distributed.all_sum(ops.sum(per_example * valid))
    count = distributed.all_sum(ops.sum(valid))
    return distributed.scale(total / ops.maximum(count, 1.0))
