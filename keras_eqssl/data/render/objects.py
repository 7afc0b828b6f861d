"""Procedural objects: 12 classes built from trimesh primitives, with random shape parameters.

Each class has a builder `build(rng) -> list[Part]` that draws its own proportions (a mug may be
squat or tall, a chair has round, square or splayed legs and a panel, slat or rail back, ...)
and colours from a class palette, so classes vary within themselves and not only in pose.
`procedural_object(seed, index)` is deterministic in (seed, index): object `index` belongs to
class `index % 12` (classes stay balanced) and draws from `np.random.default_rng([seed, index])`.

Synsets are made up, 8 digits like ShapeNet's, and stable: a new class gets the next number.

| synset | class | | synset | class |
|---|---|---|---|---|
| 00000001 | airplane | | 00000007 | lamp |
| 00000002 | bottle | | 00000008 | mug |
| 00000003 | bowl | | 00000009 | sofa |
| 00000004 | car | | 00000010 | table |
| 00000005 | chair | | 00000011 | vase |
| 00000006 | guitar | | 00000012 | knot |

Builders work in a z-up frame in arbitrary units; `meshes.vertex_data` centres and scales.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import trimesh

Part = tuple  # (trimesh.Trimesh, (3,) sRGB colour)


# --- primitives ---------------------------------------------------------------------------------
def box(extents, center, color, transform=None) -> Part:
    """An axis-aligned box (optionally transformed after centring)."""
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(center)
    if transform is not None:
        mesh.apply_transform(transform)
    return mesh, color


def rod(p0, p1, radius, color, sections=16) -> Part:
    """A capped cylinder from point p0 to p1."""
    return trimesh.creation.cylinder(radius=radius, segment=[p0, p1], sections=sections), color


def hull(points, color) -> Part:
    """The convex hull of (N, 3) points (wings, fins, car cabins)."""
    return trimesh.Trimesh(np.asarray(points, np.float64)).convex_hull, color


def lathe(profile, color, sections=40) -> Part:
    """A surface of revolution about z of a (N, 2) profile of (radius, height) points."""
    return trimesh.creation.revolve(np.asarray(profile, np.float64), sections=sections), color


def tube(points, radius, color, sections=12, closed=False) -> Part:
    """A tube of (N,) or scalar radius along a (N, 3) polyline (capped unless `closed`).

    Frames are parallel-transported along the curve; on a closed curve the leftover twist is
    spread evenly so the seam does not show.
    """
    p = np.asarray(points, np.float64)
    n = len(p)
    r = np.broadcast_to(np.asarray(radius, np.float64), (n,))
    t = (np.roll(p, -1, 0) - np.roll(p, 1, 0)) if closed else np.gradient(p, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    a = np.eye(3)[np.argmin(np.abs(t[0]))]
    normals = np.empty_like(p)
    normals[0] = np.cross(t[0], a) / np.linalg.norm(np.cross(t[0], a))
    for i in range(1, n):
        v = normals[i - 1] - np.dot(normals[i - 1], t[i]) * t[i]
        normals[i] = v / np.linalg.norm(v)
    binormals = np.cross(t, normals)
    angle0 = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    if closed:  # twist left over after going round, spread along the curve
        v = normals[-1] - np.dot(normals[-1], t[0]) * t[0]
        twist = np.arctan2(np.dot(np.cross(v, normals[0]), t[0]), np.dot(v, normals[0]))
        shift = twist * np.arange(n) / n
    else:
        shift = np.zeros(n)
    ang = angle0[None, :] - shift[:, None]
    ring = np.cos(ang)[..., None] * normals[:, None] + np.sin(ang)[..., None] * binormals[:, None]
    verts = (p[:, None] + r[:, None, None] * ring).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n if closed else n - 1), np.arange(sections), indexing="ij")
    a0, a1 = i * sections + j, i * sections + (j + 1) % sections
    b0, b1 = ((i + 1) % n) * sections + j, ((i + 1) % n) * sections + (j + 1) % sections
    faces = np.concatenate([np.stack([a0, b0, b1], -1).reshape(-1, 3), np.stack([a0, b1, a1], -1).reshape(-1, 3)])
    if not closed:
        c0, c1 = len(verts), len(verts) + 1
        verts = np.vstack([verts, p[0], p[-1]])
        j = np.arange(sections)
        last = (n - 1) * sections
        caps = [np.stack([np.full(sections, c0), (j + 1) % sections, j], -1)]
        caps.append(np.stack([np.full(sections, c1), last + j, last + (j + 1) % sections], -1))
        faces = np.concatenate([faces, *caps])
    return trimesh.Trimesh(verts, faces, process=False), color


def ellipsoid(radii, center, color) -> Part:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    mesh.apply_scale(radii)
    mesh.apply_translation(center)
    return mesh, color


# --- colours -------------------------------------------------------------------------------------
def pick(rng: np.random.Generator, palette, jitter: float = 0.06) -> np.ndarray:
    """A palette colour with a little per-object brightness and tint jitter (sRGB, clipped)."""
    base = np.asarray(palette[rng.integers(len(palette))], np.float64)
    return np.clip(base * rng.uniform(1 - jitter, 1 + jitter) + rng.normal(0, jitter / 3, 3), 0.02, 0.98)


WOOD = [(0.55, 0.35, 0.18), (0.42, 0.26, 0.13), (0.72, 0.54, 0.33), (0.3, 0.18, 0.1), (0.8, 0.68, 0.5)]
METAL = [(0.15, 0.15, 0.16), (0.7, 0.7, 0.72), (0.72, 0.58, 0.3)]
PAINT = [(0.8, 0.1, 0.1), (0.1, 0.25, 0.7), (0.95, 0.8, 0.1), (0.92, 0.92, 0.9), (0.1, 0.1, 0.12), (0.1, 0.5, 0.2)]
CERAMIC = [(0.93, 0.92, 0.88), (0.2, 0.35, 0.7), (0.75, 0.35, 0.2), (0.35, 0.6, 0.45), (0.85, 0.75, 0.3)]
FABRIC = [(0.45, 0.5, 0.55), (0.6, 0.2, 0.2), (0.25, 0.35, 0.25), (0.75, 0.7, 0.6), (0.2, 0.25, 0.45)]
DARK = (0.08, 0.08, 0.09)


def _smooth_profile(rng, heights, rmin, rmax, points=40):
    """(points, 2) a smooth random radius profile over `heights` control points."""
    zs = np.linspace(0, 1, len(heights))
    z = np.linspace(0, 1, points)
    r = np.interp(z, zs, heights)
    r = np.convolve(np.pad(r, 3, mode="edge"), np.ones(7) / 7, mode="valid")
    return np.clip(r, rmin, rmax), z


# --- classes -------------------------------------------------------------------------------------
def airplane(rng):
    length, radius = rng.uniform(2.2, 3.2), rng.uniform(0.11, 0.19)
    color, accent = pick(rng, [(0.92, 0.92, 0.93), (0.75, 0.77, 0.8), (0.55, 0.6, 0.68)]), pick(rng, PAINT)
    x = np.linspace(-length / 2, length / 2, 24)
    s = (x + length / 2) / length
    prof = radius * np.clip(np.minimum(np.sqrt(s / 0.12), 1.0) * np.minimum(1.0, 0.35 + (1 - s) / 0.35), 0.05, 1)
    z = np.where(s > 0.7, (s - 0.7) * 0.5 * radius / 0.3, 0.0)
    parts = [tube(np.stack([x, np.zeros_like(x), z], -1), prof, color, sections=16)]
    span, chord = rng.uniform(2.0, 3.4), rng.uniform(0.35, 0.6)
    sweep, taper, xw = rng.uniform(0.0, 0.7), rng.uniform(0.35, 0.8), rng.uniform(-0.25, 0.15) * length
    zw = rng.choice([-0.6, 0.0, 0.6]) * radius
    for side in (-1, 1):
        root = [(xw - chord / 2, 0, zw), (xw + chord / 2, 0, zw)]
        tip = [
            (xw + sweep - chord * taper / 2, side * span / 2, zw),
            (xw + sweep + chord * taper / 2, side * span / 2, zw),
        ]
        pts = [(px, py, pz + dz) for px, py, pz in root + tip for dz in (-0.03, 0.03)]
        parts.append(hull(pts, color))
        ht = [(length / 2 - 0.35, 0, 0.1), (length / 2 - 0.05, 0, 0.1)]
        htip = [(length / 2 - 0.15, side * span * 0.22, 0.12), (length / 2, side * span * 0.22, 0.12)]
        parts.append(hull([(px, py, pz + dz) for px, py, pz in ht + htip for dz in (-0.02, 0.02)], color))
    fin = [
        (length / 2 - 0.45, 0, 0.05),
        (length / 2 - 0.02, 0, 0.05),
        (length / 2 - 0.05, 0, 0.55),
        (length / 2 + 0.08, 0, 0.55),
    ]
    fin = [(length / 2 - 0.45, 0, 0.05), (length / 2, 0, 0.05)] + [
        (fx + rng.uniform(-0.05, 0.05), 0, fz) for fx, _, fz in fin[2:]
    ]
    parts.append(hull([(px, dy, pz) for px, _, pz in fin for dy in (-0.025, 0.025)], accent))
    engines = rng.choice([0, 2, 2, 4])
    for k in range(engines // 2):
        for side in (-1, 1):
            y = side * span * (0.18 + 0.15 * k)
            x0 = xw + sweep * (abs(y) / (span / 2)) - chord * 0.6
            parts.append(rod((x0, y, zw - 0.12), (x0 + chord * 0.8, y, zw - 0.12), 0.07, accent))
    return parts


def bottle(rng):
    rb, hb = rng.uniform(0.22, 0.45), rng.uniform(0.8, 1.6)
    rn, hs, hn = rng.uniform(0.07, 0.14), rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.5)
    s = np.linspace(0, 1, 10)
    shoulder = np.stack([rn + (rb - rn) * (0.5 + 0.5 * np.cos(np.pi * s)), hb + hs * s], -1)
    prof = np.vstack([[0, 0], [rb * 0.9, 0], [rb, 0.06], [rb, hb], shoulder, [rn, hb + hs + hn], [0, hb + hs + hn]])
    glass = pick(rng, [(0.15, 0.45, 0.2), (0.45, 0.25, 0.08), (0.2, 0.35, 0.65), (0.8, 0.86, 0.86), (0.6, 0.1, 0.15)])
    top = hb + hs + hn
    cap = rod((0, 0, top - 0.05), (0, 0, top + rng.uniform(0.06, 0.18)), rn * 1.18, pick(rng, METAL + PAINT[:3]), 24)
    parts = [lathe(prof, glass), cap]
    if rng.random() < 0.6:  # a label
        parts.append(rod((0, 0, hb * 0.3), (0, 0, hb * 0.75), rb * 1.01, pick(rng, CERAMIC), 40))
    return parts


def bowl(rng):
    radius, depth, foot = 1.0, rng.uniform(0.3, 0.75), rng.uniform(0.25, 0.5)
    power, wall = rng.uniform(0.4, 1.5), rng.uniform(0.04, 0.08)
    z = np.linspace(0, 1, 16) ** 1.0
    outer = np.stack([foot + (radius - foot) * z**power, 0.06 + depth * z], -1)
    inner = np.stack([(foot + (radius - foot) * z**power - wall)[::-1], (0.06 + wall + depth * z)[::-1] - wall * 0], -1)
    inner[:, 1] = np.minimum(inner[:, 1], 0.06 + depth)
    prof = np.vstack([[0, 0], [foot * 0.9, 0], outer, inner, [0, 0.06 + wall]])
    return [lathe(prof, pick(rng, CERAMIC + [(0.85, 0.85, 0.82)]), 48)]


def car(rng):
    length, width, hb = rng.uniform(1.8, 2.6), rng.uniform(0.8, 1.0), rng.uniform(0.28, 0.5)
    wr = rng.uniform(0.16, 0.27)
    zb = wr * 0.9
    color = pick(rng, PAINT + [(0.7, 0.7, 0.72)])
    parts = [box((length, width, hb), (0, 0, zb + hb / 2), color)]
    cl, cx, ch = rng.uniform(0.35, 0.65) * length, rng.uniform(-0.2, 0.15) * length, rng.uniform(0.25, 0.45)
    slope = rng.uniform(0.1, 0.35)
    pts = []
    for y in (-width * 0.45, width * 0.45):
        pts += [(cx - cl / 2, y, zb + hb), (cx + cl / 2, y, zb + hb)]
    for y in (-width * 0.4, width * 0.4):
        pts += [(cx - cl / 2 + slope, y, zb + hb + ch), (cx + cl / 2 - slope * 0.6, y, zb + hb + ch)]
    parts.append(hull(pts, pick(rng, [(0.25, 0.32, 0.4), (0.15, 0.18, 0.22)], 0.03)))
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * length * rng.uniform(0.3, 0.36), sy * (width / 2 - 0.05)
            parts.append(rod((x, y - 0.1, wr), (x, y + 0.1, wr), wr, DARK, 24))
            parts.append(rod((x, y - 0.105 * sy * -1, wr), (x, y + 0.105 * sy, wr), wr * 0.55, (0.7, 0.7, 0.72), 16))
    for sy in (-1, 1):
        parts.append(box((0.03, 0.16, 0.07), (-length / 2 - 0.01, sy * width * 0.33, zb + hb * 0.7), (0.95, 0.9, 0.6)))
    return parts


def chair(rng):
    w, d, h, t = rng.uniform(0.8, 1.1), rng.uniform(0.75, 1.05), rng.uniform(0.8, 1.1), rng.uniform(0.06, 0.12)
    seat, legc = pick(rng, WOOD + PAINT[:4]), pick(rng, WOOD + METAL)
    parts = [box((w, d, t), (0, 0, h), seat)]
    style, lw = rng.integers(3), rng.uniform(0.035, 0.07)
    for sx in (-1, 1):
        for sy in (-1, 1):
            top = (sx * (w / 2 - lw * 1.5), sy * (d / 2 - lw * 1.5), h - t / 2)
            if style == 0:
                parts.append(rod((*top[:2], 0), top, lw, legc))
            elif style == 1:
                parts.append(box((2 * lw, 2 * lw, top[2]), (*top[:2], top[2] / 2), legc))
            else:
                splay = rng.uniform(0.08, 0.2)
                parts.append(rod((top[0] + sx * splay, top[1] + sy * splay, 0), top, lw * 0.8, legc))
    bh, back = rng.uniform(0.6, 1.3), rng.integers(3)
    y0 = d / 2 - 0.04
    if back == 0:
        parts.append(box((w, 0.07, bh), (0, y0, h + bh / 2), seat))
    else:
        parts += [rod((sx * (w / 2 - 0.04), y0, h), (sx * (w / 2 - 0.04), y0, h + bh), 0.04, legc) for sx in (-1, 1)]
        parts.append(box((w, 0.07, 0.16), (0, y0, h + bh - 0.08), seat))
        n = rng.integers(2, 6)
        for k in range(n):
            if back == 1:  # vertical slats
                x = -w / 2 + w * (k + 1) / (n + 1)
                parts.append(box((0.05, 0.04, bh - 0.1), (x, y0, h + (bh - 0.1) / 2), seat))
            else:  # horizontal rails
                z = h + (bh - 0.16) * (k + 1) / (n + 1)
                parts.append(box((w, 0.04, 0.05), (0, y0, z), seat))
    if rng.random() < 0.3:  # armrests
        for sx in (-1, 1):
            parts.append(box((0.07, d * 0.9, 0.05), (sx * w / 2, 0, h + 0.3), seat))
            parts.append(rod((sx * w / 2, -d * 0.35, h), (sx * w / 2, -d * 0.35, h + 0.3), 0.03, legc))
    return parts


def guitar(rng):
    r1 = rng.uniform(0.45, 0.6)
    r2, thick = r1 * rng.uniform(0.68, 0.85), rng.uniform(0.12, 0.3)
    body = pick(rng, [(0.78, 0.55, 0.28), (0.55, 0.2, 0.08), (0.1, 0.1, 0.1), (0.9, 0.88, 0.82), (0.6, 0.05, 0.1)])
    neckc = pick(rng, WOOD)
    z2 = r1 + r2 * rng.uniform(0.55, 0.8)
    parts = [rod((0, -thick / 2, 0), (0, thick / 2, 0), r1, body, 40)]
    parts.append(rod((0, -thick / 2, z2), (0, thick / 2, z2), r2, body, 40))
    parts[0][0].apply_transform(trimesh.transformations.rotation_matrix(0, (0, 0, 1)))
    neck_len = rng.uniform(1.2, 1.7)
    parts.append(box((0.12, 0.07, neck_len), (0, -thick / 2 - 0.02, z2 + r2 * 0.6 + neck_len / 2), neckc))
    parts.append(box((0.2, 0.06, 0.3), (0, -thick / 2 - 0.02, z2 + r2 * 0.6 + neck_len + 0.15), neckc))
    if rng.random() < 0.6:  # acoustic: sound hole
        parts.append(rod((0, -thick / 2 - 0.01, z2 * 0.75), (0, -thick / 2 + 0.005, z2 * 0.75), r2 * 0.35, DARK, 32))
    else:  # electric: pickups
        for z in (0.0, 0.22):
            parts.append(box((0.3, 0.03, 0.08), (0, -thick / 2 - 0.01, z + r1 * 0.2), DARK))
    parts.append(box((0.35, 0.03, 0.06), (0, -thick / 2 - 0.01, -r1 * 0.45), neckc))
    return parts


def knot(rng):
    p, q = [(2, 3), (2, 5), (3, 4), (3, 5), (2, 7), (3, 7), (5, 2)][rng.integers(7)]
    height, radius = rng.uniform(0.5, 1.4), rng.uniform(0.18, 0.42)
    phi = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    r = np.cos(q * phi) + 2.0
    pts = np.stack([r * np.cos(p * phi), r * np.sin(p * phi), -height * np.sin(q * phi)], -1)
    return [tube(pts, radius, pick(rng, PAINT + CERAMIC), sections=12, closed=True)]


def lamp(rng):
    base_r, metal = rng.uniform(0.25, 0.5), pick(rng, METAL)
    shade = pick(rng, [(0.95, 0.92, 0.8), (0.9, 0.9, 0.9), (0.7, 0.15, 0.1), (0.2, 0.45, 0.3), (0.15, 0.2, 0.5)])
    parts = [rod((0, 0, 0), (0, 0, rng.uniform(0.04, 0.1)), base_r, metal, 32)]
    rb, rt, hs = rng.uniform(0.3, 0.55), rng.uniform(0.12, 0.4), rng.uniform(0.25, 0.55)
    shell = np.array([[rb, 0], [rt, hs], [rt - 0.02, hs], [rb - 0.02, 0]])
    if rng.random() < 0.55:  # floor/table lamp: straight pole, shade on top
        height = rng.uniform(1.0, 2.2)
        parts.append(rod((0, 0, 0), (0, 0, height), rng.uniform(0.02, 0.05), metal))
        m, c = lathe(shell + [0, height - hs * 0.4], shade)
        parts.append((m, c))
    else:  # desk lamp: two-segment arm, shade pointing down
        a1, a2 = rng.uniform(0.8, 1.3), rng.uniform(0.6, 1.1)
        ang = rng.uniform(0.1, 0.6)
        elbow = np.array([np.sin(ang) * a1 * -0.5, 0, np.cos(ang) * a1])
        head = elbow + np.array([a2, 0, rng.uniform(-0.2, 0.3)])
        parts.append(tube(np.linspace([0, 0, 0], elbow, 8), 0.035, metal, 10))
        parts.append(tube(np.linspace(elbow, head, 8), 0.035, metal, 10))
        parts.append(ellipsoid((0.06, 0.06, 0.06), elbow, metal))
        m, c = lathe(shell * [0.8, 1] - [0, hs], shade)
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi, (1, 0, 0)))
        m.apply_translation(head + [0, 0, hs * 0.3 - hs])
        parts.append((m, c))
    return parts


def mug(rng):
    radius, height, wall = rng.uniform(0.3, 0.55), rng.uniform(0.55, 1.3), rng.uniform(0.03, 0.06)
    taper = rng.uniform(0.85, 1.2)
    top = radius * taper
    prof = [[0, 0], [radius, 0], [top, height], [top - wall, height], [radius - wall, wall], [0, wall]]
    color = pick(rng, CERAMIC + PAINT)
    parts = [lathe(prof, color, 48)]
    hw, hh = rng.uniform(0.15, 0.35), rng.uniform(0.3, 0.75) * height
    zc = height * rng.uniform(0.45, 0.6)
    s = np.linspace(0.05, np.pi - 0.05, 20)
    side = (radius + top) / 2 - wall / 2
    pts = np.stack([side + hw * np.sin(s) ** rng.uniform(0.5, 1.2), np.zeros_like(s), zc + hh / 2 * np.cos(s)], -1)
    parts.append(tube(pts, rng.uniform(0.035, 0.07), color, 10))
    return parts


def sofa(rng):
    length, depth, seat_h = rng.uniform(1.6, 2.8), rng.uniform(0.8, 1.05), rng.uniform(0.35, 0.5)
    color, legc = pick(rng, FABRIC), pick(rng, WOOD + METAL)
    leg = rng.uniform(0.05, 0.15)
    parts = [box((length, depth, seat_h - leg), (0, 0, leg + (seat_h - leg) / 2), color)]
    back_h, back_t = rng.uniform(0.35, 0.7), rng.uniform(0.15, 0.28)
    parts.append(box((length, back_t, back_h), (0, depth / 2 - back_t / 2, seat_h + back_h / 2), color))
    arm_w, arm_h = rng.uniform(0.12, 0.25), rng.uniform(0.12, 0.35)
    for sx in (-1, 1):
        parts.append(box((arm_w, depth, arm_h), (sx * (length / 2 - arm_w / 2), 0, seat_h + arm_h / 2), color))
    n = rng.integers(2, 4)
    inner = length - 2 * arm_w
    cushion = pick(rng, FABRIC) if rng.random() < 0.3 else color * 1.08
    for k in range(n):
        x = -inner / 2 + inner * (k + 0.5) / n
        parts.append(box((inner / n - 0.03, depth - back_t - 0.03, 0.12), (x, -back_t / 2, seat_h + 0.06), cushion))
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                rod(
                    (sx * (length / 2 - 0.08), sy * (depth / 2 - 0.08), 0),
                    (sx * (length / 2 - 0.08), sy * (depth / 2 - 0.08), leg),
                    0.035,
                    legc,
                )
            )
    return parts


def table(rng):
    height, color = rng.uniform(0.6, 1.0), pick(rng, WOOD + [(0.92, 0.92, 0.9), (0.15, 0.15, 0.15)])
    legc = color if rng.random() < 0.6 else pick(rng, METAL)
    t = rng.uniform(0.04, 0.1)
    parts = []
    if rng.random() < 0.35:  # round, on a pedestal or three legs
        r = rng.uniform(0.5, 0.85)
        parts.append(rod((0, 0, height - t), (0, 0, height), r, color, 48))
        if rng.random() < 0.5:
            parts.append(rod((0, 0, 0), (0, 0, height - t), rng.uniform(0.05, 0.1), legc))
            parts.append(rod((0, 0, 0), (0, 0, 0.05), r * rng.uniform(0.4, 0.7), legc, 32))
        else:
            for a in np.arange(3) * 2 * np.pi / 3:
                parts.append(
                    rod(
                        (0.8 * r * np.cos(a), 0.8 * r * np.sin(a), 0),
                        (0.5 * r * np.cos(a), 0.5 * r * np.sin(a), height - t),
                        0.04,
                        legc,
                    )
                )
    else:
        length, width = rng.uniform(1.2, 2.4), rng.uniform(0.7, 1.2)
        parts.append(box((length, width, t), (0, 0, height - t / 2), color))
        lw, inset = rng.uniform(0.03, 0.08), rng.uniform(0.03, 0.15)
        round_legs = rng.random() < 0.5
        for sx in (-1, 1):
            for sy in (-1, 1):
                x, y = sx * (length / 2 - inset - lw), sy * (width / 2 - inset - lw)
                if round_legs:
                    parts.append(rod((x, y, 0), (x, y, height - t), lw, legc))
                else:
                    parts.append(box((2 * lw, 2 * lw, height - t), (x, y, (height - t) / 2), legc))
        if rng.random() < 0.5:  # apron
            parts.append(box((length - 2 * inset, width - 2 * inset, 0.1), (0, 0, height - t - 0.05), legc))
    return parts


def vase(rng):
    height = rng.uniform(1.2, 2.4)
    r, z = _smooth_profile(rng, rng.uniform(0.15, 0.65, size=rng.integers(4, 7)), 0.1, 0.7)
    r[0] = max(r[0], 0.2)
    z = z * height
    wall = 0.03
    lip = rng.uniform(0.0, 0.12)
    outer = np.stack([r, z], -1)
    outer[-1, 0] += lip
    inner_depth = min(0.4, height * 0.3)
    prof = np.vstack(
        [[0, 0], outer, [outer[-1, 0] - wall, height], [r[-1] - wall, height - inner_depth], [0, height - inner_depth]]
    )
    return [lathe(prof, pick(rng, CERAMIC + [(0.45, 0.2, 0.5), (0.1, 0.3, 0.35)]), 48)]


@dataclasses.dataclass(frozen=True)
class ObjectClass:
    name: str
    synset: str
    build: Callable[[np.random.Generator], list]


CLASSES = tuple(
    ObjectClass(fn.__name__, f"{k + 1:08d}", fn)
    for k, fn in enumerate([airplane, bottle, bowl, car, chair, guitar, lamp, mug, sofa, table, vase, knot])
)


def num_classes() -> int:
    return len(CLASSES)


def class_of(index: int) -> tuple[int, ObjectClass]:
    """(label, class) of procedural object `index`."""
    label = index % len(CLASSES)
    return label, CLASSES[label]


def object_id(index: int) -> str:
    """The folder name of procedural object `index`, e.g. 'mug_000007'."""
    return f"{class_of(index)[1].name}_{index:06d}"


def procedural_object(seed: int, index: int):
    """The mesh and per-face sRGB colours of procedural object `index`.

    Returns:
        (trimesh.Trimesh with F faces, (F, 3) float32 colours).
    """
    _, cls = class_of(index)
    rng = np.random.default_rng([seed, index, 0])
    parts = cls.build(rng)
    meshes = [m for m, _ in parts]
    colors = np.concatenate([np.tile(np.asarray(c, np.float32), (len(m.faces), 1)) for m, c in parts])
    return trimesh.util.concatenate(meshes), colors
