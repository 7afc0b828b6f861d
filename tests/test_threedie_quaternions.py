"""The in-graph quaternion port equals scipy's Rotation (sign included) to 1e-6."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.transform import Rotation

from keras_eqssl.data.quaternions import euler_xyz_to_quaternion, quaternion_multiply, relative_rotation


@pytest.fixture
def angles(rng):
    a = rng.uniform(-np.pi, np.pi, (2000, 3))
    a[:10] = [[0, 0, 0], [np.pi / 2, 0, 0], [0, -np.pi / 2, 0], [0, 0, np.pi], [np.pi / 2, np.pi / 2, np.pi / 2]] * 2
    return a


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_euler_to_quaternion_matches_scipy(angles, dtype):
    ours = euler_xyz_to_quaternion(tf.constant(angles, dtype)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_euler("xyz", angles).as_quat(), atol=1e-6)


def test_relative_rotation_matches_sie_formula(angles):
    """SIE's target: (from_euler(l1).inv() * from_euler(l2)).as_quat(), on 3DIEBench-range latents too."""
    l1 = np.concatenate([angles[:1000], np.zeros((1000, 4))], 1).astype(np.float32)
    l2 = np.concatenate([angles[1000:] / 2, np.ones((1000, 4))], 1).astype(np.float32)
    expected = (Rotation.from_euler("xyz", l1[:, :3]).inv() * Rotation.from_euler("xyz", l2[:, :3])).as_quat()
    ours = relative_rotation(tf.constant(l1, tf.float64), tf.constant(l2, tf.float64)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    ours32 = relative_rotation(tf.constant(l1), tf.constant(l2)).numpy()
    np.testing.assert_allclose(ours32, expected, atol=1e-6)
    assert (expected[:, 3] < 0).any(), "the targets should include w < 0 (not sign-canonicalised)"


def test_product_is_scipy_composition(rng):
    p, q = Rotation.random(50, random_state=1), Rotation.random(50, random_state=2)
    ours = quaternion_multiply(tf.constant(p.as_quat()), tf.constant(q.as_quat())).numpy()
    np.testing.assert_allclose(ours, (p * q).as_quat(), atol=1e-12)
