"""3DIEBench rotation latents: Euler angles to matrices, and the relative rotation of a view pair.

A 3DIEBench latent is 7 floats (see `keras_eqssl.data.render.scene`); its first three are the
object's rotation as extrinsic "xyz" Tait-Bryan angles, `scipy.spatial.transform.Rotation.from_euler("xyz", a)`.
SIE's target for a pair of views (facebookresearch/SIE, src/dataset.py) is the rotation taking
view 1 to view 2, `R1^-1 R2`, as a scipy quaternion (x, y, z, w), not sign-canonicalised.
Only numpy and scipy are imported here, so a tf.data reader can use it without a GL stack.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

EULER_ORDER = "xyz"  # extrinsic x, then y, then z (scipy's lowercase convention), as 3DIEBench


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices of extrinsic "xyz" Euler angles.

    Args:
        angles: (..., 3) radians (a latent's first three values).

    Returns:
        (..., 3, 3) float64 matrices R with `R @ v` rotating object coordinates v.
    """
    angles = np.asarray(angles, dtype=np.float64)
    flat = Rotation.from_euler(EULER_ORDER, angles.reshape(-1, 3)).as_matrix()
    return flat.reshape(*angles.shape[:-1], 3, 3)


def relative_quaternion(latent1: np.ndarray, latent2: np.ndarray) -> np.ndarray:
    """SIE's relative-rotation target `(R1^-1 R2).as_quat()` for a pair of views.

    Equal to `(Rotation.from_euler("xyz", l1[:3]).inv() * Rotation.from_euler("xyz", l2[:3])).as_quat()`.

    Args:
        latent1: (..., >=3) latents (or Euler angles) of the first view; only [..., :3] is read.
        latent2: (..., >=3) latents of the second view, broadcastable against `latent1`.

    Returns:
        (..., 4) float64 quaternions in scipy's (x, y, z, w) order, not sign-canonicalised.
    """
    a1 = np.asarray(latent1, dtype=np.float64)[..., :3]
    a2 = np.asarray(latent2, dtype=np.float64)[..., :3]
    a1, a2 = np.broadcast_arrays(a1, a2)
    shape = a1.shape[:-1]
    r1 = Rotation.from_euler(EULER_ORDER, a1.reshape(-1, 3))
    r2 = Rotation.from_euler(EULER_ORDER, a2.reshape(-1, 3))
    return (r1.inv() * r2).as_quat().reshape(*shape, 4)
