"""Meshes to GPU rows, and meshes from files (`--mesh_dir`).

`vertex_data(mesh, face_colors)` turns a trimesh into the renderer's (3F, 9) float32 rows:
centred on its bounding box, scaled to a largest extent of 1, smooth normals except across
sharp edges (trimesh's `smooth_shaded`, 30 degrees), one sRGB colour per face.

`find_meshes(mesh_dir)` lists a folder of meshes, one subfolder per class, in either layout:
ModelNet (`CLASS/train|test/NAME.off`) or ShapeNet (`SYNSET/OBJ_ID/models/model_normalized.obj`).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from keras_eqssl.data.render.scene import normalize_vertices

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl")
SPLIT_FOLDERS = ("train", "test", "val")  # ModelNet's split level, skipped when naming objects
DEFAULT_GREY = (0.62, 0.62, 0.62)


class MeshError(ValueError):
    """A mesh file that cannot be read or rendered (the message names the file), or a bad mesh folder."""


@dataclasses.dataclass(frozen=True)
class MeshFile:
    """One mesh to render: its class folder name (the synset), label, object id and file."""

    synset: str
    label: int
    object_id: str
    path: pathlib.Path


def vertex_data(mesh, face_colors: np.ndarray | None = None) -> np.ndarray:
    """Renderer rows of a mesh.

    Args:
        mesh: a `trimesh.Trimesh` with F faces.
        face_colors: (F, 3) sRGB in [0, 1]; default the mesh's own face colours.

    Returns:
        (3F, 9) float32: position (normalised), normal, colour for each corner of each face.
    """
    if len(mesh.faces) == 0:
        raise ValueError("the mesh has no faces")
    if face_colors is None:
        face_colors = mesh.visual.face_colors[:, :3] / 255.0
    face_colors = np.asarray(face_colors, np.float32)
    corners = np.asarray(mesh.vertices, np.float64)[np.asarray(mesh.faces)]  # (F, 3, 3)
    rows = np.empty((len(corners), 3, 9), np.float32)
    rows[..., 0:3] = normalize_vertices(corners.reshape(-1, 3)).reshape(-1, 3, 3)
    rows[..., 3:6] = corner_normals(corners)
    rows[..., 6:9] = face_colors[:, None, :]
    return rows.reshape(-1, 9)


def corner_normals(corners: np.ndarray, crease_degrees: float = 35.0) -> np.ndarray:
    """Smooth shading normals that stay sharp across creases.

    The normal at each corner of a face averages (area-weighted) the normals of the faces that
    share the corner's position and bend less than `crease_degrees` from this face: round
    surfaces look round, box edges stay crisp. (trimesh's `smooth_shaded` does this too but
    reorders the faces, and per-face colours need the order.)

    Args:
        corners: (F, 3, 3) positions of each face's three corners.

    Returns:
        (F, 3, 3) unit normals, one per corner.
    """
    num_faces = len(corners)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    unit = np.divide(cross, area[:, None], out=np.zeros_like(cross), where=area[:, None] > 0)
    scale = float(np.ptp(corners.reshape(-1, 3), axis=0).max()) or 1.0
    keys = np.round(corners.reshape(-1, 3) / (scale * 1e-6)).astype(np.int64)
    _, vert = np.unique(keys, axis=0, return_inverse=True)
    vert = vert.ravel()  # (3F,) the merged vertex of each corner
    order = np.argsort(vert, kind="stable")
    counts = np.bincount(vert)
    starts = np.cumsum(counts) - counts
    rep = counts[vert[order]]  # each corner pairs with every corner at the same position
    left = np.repeat(order, rep)
    offsets = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
    right = order[np.repeat(starts[vert[order]], rep) + offsets]
    fl, fr = left // 3, right // 3
    keep = np.einsum("ij,ij->i", unit[fl], unit[fr]) > np.cos(np.radians(crease_degrees))
    weight = np.where(keep, area[fr], 0.0)
    summed = np.stack([np.bincount(left, weight * unit[fr, k], minlength=3 * num_faces) for k in range(3)], -1)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    face_unit = np.repeat(unit, 3, axis=0)
    normals = np.where(length > 1e-12, summed / np.maximum(length, 1e-12), face_unit)
    normals[np.linalg.norm(normals, axis=1) < 0.5] = (0.0, 0.0, 1.0)
    return normals.reshape(num_faces, 3, 3)


def load_mesh(path: str | pathlib.Path):
    """Reads a mesh file as one `trimesh.Trimesh` with face colours (grey where the file has none).

    Raises:
        MeshError: naming the file, when trimesh cannot read it or it holds no triangles.
    """
    import trimesh

    path = pathlib.Path(path)
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for a bad file
        raise MeshError(f"cannot read mesh file {path}: {type(err).__name__}: {err}") from err
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise MeshError(f"mesh file {path} holds no triangles")
    if not np.isfinite(mesh.vertices).all() or float(np.ptp(mesh.vertices, axis=0).max()) <= 0:
        raise MeshError(f"mesh file {path} has non-finite or degenerate vertices")
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=_face_colors(mesh))
    return mesh


def _face_colors(mesh) -> np.ndarray:
    """(F, 4) uint8 colours from the file's materials/colours if it has any, else grey."""
    grey = np.tile(np.array([*DEFAULT_GREY, 1.0]) * 255, (len(mesh.faces), 1)).astype(np.uint8)
    try:
        visual = mesh.visual
        if visual.kind is None:
            return grey
        colors = visual.to_color().face_colors if visual.kind == "texture" else visual.face_colors
        colors = np.asarray(colors)
        if colors.shape != (len(mesh.faces), 4):
            return grey
        return colors.astype(np.uint8)
    except Exception:  # a material trimesh cannot turn into colours: render it grey
        return grey


def find_meshes(mesh_dir: str | pathlib.Path) -> list[MeshFile]:
    """Lists the meshes of a folder with one subfolder per class (sorted; label = class index).

    The object id is the file's stem where the file sits in the class folder or a split folder
    (`train`/`test`/`val`, ModelNet), otherwise the first folder below the class (ShapeNet's OBJ_ID).

    Raises:
        MeshError: if the folder is missing or has no class folders, a class folder has no mesh
            files (named), or two files of one class give the same object id (both named).
    """
    root = pathlib.Path(mesh_dir)
    if not root.is_dir():
        raise MeshError(f"--mesh_dir {root} is not a folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise MeshError(f"--mesh_dir {root} has no class folders (expected {root}/CLASS/.../MESH.obj|off|ply|stl)")
    found = []
    for label, class_dir in enumerate(classes):
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
        if not files:
            raise MeshError(f"class folder {class_dir} holds no mesh files ({', '.join(MESH_SUFFIXES)})")
        seen: dict[str, pathlib.Path] = {}
        for path in files:
            parts = path.relative_to(class_dir).parts
            folders = [p for p in parts[:-1] if p.lower() not in SPLIT_FOLDERS]
            object_id = folders[0] if folders else path.stem
            if object_id in seen:
                raise MeshError(f"{seen[object_id]} and {path} both give object id {object_id!r} in {class_dir}")
            seen[object_id] = path
            found.append(MeshFile(class_dir.name, label, object_id, path))
    return found
