"""Quaternions in TensorFlow ops, in scipy's (x, y, z, w) order, for 3DIEBench rotation targets.

A port of the scipy formulas SIE uses (facebookresearch/SIE, src/dataset.py):

    R.from_euler("xyz", l1[:3]).inv() * R.from_euler("xyz", l2[:3])).as_quat()

so the pair target is computed inside a `tf.data` map with no `tf.py_function`. Each function
matches scipy to float rounding, sign included (nothing is sign-canonicalised), which
`tests/test_threedie_quaternions.py` checks. We write it because scipy's `Rotation` is NumPy-only.
"""

from __future__ import annotations

import tensorflow as tf


def quaternion_multiply(p: tf.Tensor, q: tf.Tensor) -> tf.Tensor:
    """Hamilton product `p * q` (the rotation q, then p), as scipy's `Rotation.__mul__`.

    Args:
        p, q: (..., 4) quaternions (x, y, z, w), broadcastable.

    Returns:
        (..., 4) quaternions (x, y, z, w).
    """
    x1, y1, z1, w1 = tf.unstack(p, axis=-1)
    x2, y2, z2, w2 = tf.unstack(q, axis=-1)
    return tf.stack(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ],
        axis=-1,
    )


def quaternion_conjugate(q: tf.Tensor) -> tf.Tensor:
    """The inverse of unit quaternions, as scipy's `Rotation.inv()`: (..., 4) -> (..., 4)."""
    return q * tf.constant([-1.0, -1.0, -1.0, 1.0], dtype=q.dtype)


def euler_xyz_to_quaternion(angles: tf.Tensor) -> tf.Tensor:
    """Extrinsic "xyz" Euler angles to quaternions, as `Rotation.from_euler("xyz", a).as_quat()`.

    Extrinsic x, then y, then z about the fixed axes is `R = Rz @ Ry @ Rx`, so `q = qz * qy * qx`.

    Args:
        angles: (..., 3) radians.

    Returns:
        (..., 4) unit quaternions (x, y, z, w), same dtype as `angles`.

    Example:
    >>> q = euler_xyz_to_quaternion(tf.constant([0.0, 0.0, 3.14159265]))  # half a turn about z
    >>> [round(abs(float(v)), 4) for v in q]
    [0.0, 0.0, 1.0, 0.0]
    """
    half = tf.convert_to_tensor(angles) / 2
    c, s = tf.cos(half), tf.sin(half)
    zero = tf.zeros_like(half[..., 0])
    qx = tf.stack([s[..., 0], zero, zero, c[..., 0]], axis=-1)
    qy = tf.stack([zero, s[..., 1], zero, c[..., 1]], axis=-1)
    qz = tf.stack([zero, zero, s[..., 2], c[..., 2]], axis=-1)
    return quaternion_multiply(qz, quaternion_multiply(qy, qx))


def relative_rotation(latent1: tf.Tensor, latent2: tf.Tensor) -> tf.Tensor:
    """SIE's relative-rotation target `R1^-1 R2` of a view pair, as a quaternion (x, y, z, w).

    Args:
        latent1, latent2: (..., >=3) 3DIEBench latents (or Euler angles); only [..., :3] is read.

    Returns:
        (..., 4) quaternions in the latents' dtype, not sign-canonicalised (about 4.5% of
        3DIEBench pairs have w < 0, exactly as scipy returns them).
    """
    q1 = euler_xyz_to_quaternion(latent1[..., :3])
    q2 = euler_xyz_to_quaternion(latent2[..., :3])
    return quaternion_multiply(quaternion_conjugate(q1), q2)
