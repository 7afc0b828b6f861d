"""The 3DIEBench scene as numbers: latents, camera, lights, floor, and the matrices for them.

World frame: z up, the object at the origin, the floor plane at z = -1 (3DIEBench, BlenderProc).

Latent of one view, 7 float32 values (3DIEBench's `latent_k.npy`):

| index | value | range |
|---|---|---|
| 0-2 | object rotation, extrinsic "xyz" Euler angles (`Rotation.from_euler("xyz", l[:3])`) | each U(-pi/2, pi/2) |
| 3 | floor hue; floor colour HSV(h, 0.6, 0.6) | U[0, 1] |
| 4 | spot-light polar angle theta | U[0, pi/4] |
| 5 | spot-light azimuth phi | U[0, 2 pi] |
| 6 | spot-light hue; light colour HSV(h, 1, 0.8) | U[0, 1] |

The camera sits at distance 2.5 and polar angle pi/4, looking at the origin; the spot light sits on
the sphere of radius 4 at (theta, phi), aims at the origin, and has a cone of half-angle pi/8 (with
a soft edge, so its disc on the floor is visible). Matrices are row-major numpy (`M @ v`); the GL
module transposes them for GLSL.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from keras_eqssl.data.rotations import euler_to_matrix, relative_quaternion

LATENT_SIZE = 7
ANGLE_RANGE = (-math.pi / 2, math.pi / 2)
LIGHT_THETA_RANGE = (0.0, math.pi / 4)
LIGHT_PHI_RANGE = (0.0, 2 * math.pi)

CAMERA_DISTANCE = 2.5
CAMERA_POLAR = math.pi / 4
CAMERA_AZIMUTH = -math.pi / 2  # the camera looks along +y (any fixed azimuth is equivalent)
CAMERA_FOV_Y = math.radians(40.0)  # the unit-size object fills about half the frame
FLOOR_Z = -1.0
FLOOR_SATURATION, FLOOR_VALUE = 0.6, 0.6
LIGHT_RADIUS = 4.0
LIGHT_SATURATION, LIGHT_VALUE = 1.0, 0.8
SPOT_HALF_ANGLE = math.pi / 8
SPOT_BLEND = 0.25  # the soft edge, as a fraction of the half-angle

__all__ = [
    "LATENT_SIZE",
    "camera_position",
    "euler_to_matrix",
    "floor_color",
    "hsv",
    "light_color",
    "look_at",
    "normalize_vertices",
    "perspective",
    "relative_quaternion",
    "sample_latents",
    "spot_position",
]


def sample_latents(rng: np.random.Generator, num_views: int) -> np.ndarray:
    """Draws `num_views` latents as 3DIEBench does (uniform in each range above).

    Returns:
        (num_views, 7) float32.
    """
    lat = np.empty((num_views, LATENT_SIZE), np.float64)
    lat[:, 0:3] = rng.uniform(*ANGLE_RANGE, size=(num_views, 3))
    lat[:, 3] = rng.uniform(0.0, 1.0, size=num_views)
    lat[:, 4] = rng.uniform(*LIGHT_THETA_RANGE, size=num_views)
    lat[:, 5] = rng.uniform(*LIGHT_PHI_RANGE, size=num_views)
    lat[:, 6] = rng.uniform(0.0, 1.0, size=num_views)
    # float32 rounding can land on pi/2 exactly; keep the open interval of the angles.
    lat = lat.astype(np.float32)
    lim = np.nextafter(np.float32(math.pi / 2), np.float32(0))
    lat[:, 0:3] = np.clip(lat[:, 0:3], -lim, lim)
    return lat


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """(3,) float32 sRGB in [0, 1] of an HSV colour."""
    return np.asarray(colorsys.hsv_to_rgb(float(h) % 1.0, s, v), np.float32)


def floor_color(hue: float) -> np.ndarray:
    """(3,) the floor's sRGB colour HSV(hue, 0.6, 0.6)."""
    return hsv(hue, FLOOR_SATURATION, FLOOR_VALUE)


def light_color(hue: float) -> np.ndarray:
    """(3,) the spot light's colour HSV(hue, 1, 0.8)."""
    return hsv(hue, LIGHT_SATURATION, LIGHT_VALUE)


def _on_sphere(radius: float, polar: float, azimuth: float) -> np.ndarray:
    s = math.sin(polar)
    return radius * np.array([s * math.cos(azimuth), s * math.sin(azimuth), math.cos(polar)])


def camera_position() -> np.ndarray:
    """(3,) the camera's world position."""
    return _on_sphere(CAMERA_DISTANCE, CAMERA_POLAR, CAMERA_AZIMUTH)


def spot_position(theta: float, phi: float) -> np.ndarray:
    """(3,) the spot light's world position at polar angle `theta`, azimuth `phi`."""
    return _on_sphere(LIGHT_RADIUS, theta, phi)


def look_at(eye: np.ndarray, target: np.ndarray = (0.0, 0.0, 0.0), up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) view matrix (OpenGL: the camera looks down its -z). `up` is replaced by +y if parallel."""
    eye, target, up = (np.asarray(x, np.float64) for x in (eye, target, up))
    f = target - eye
    f /= np.linalg.norm(f)
    if abs(np.dot(f, up)) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    """(4, 4) OpenGL perspective projection (clip z in [-w, w])."""
    f = 1.0 / math.tan(fov_y / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def normalize_vertices(vertices: np.ndarray) -> np.ndarray:
    """Centres (N, 3) vertices on their bounding-box centre and scales the largest extent to 1."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError(f"cannot normalise a mesh with bounding box {lo} .. {hi}")
    return (v - (lo + hi) / 2) / extent
