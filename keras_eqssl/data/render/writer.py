"""The 3DIEBench on-disk format: one folder per object, a JPEG and a latent per view, split files.

    ROOT/SYNSET/OBJECT_ID/image_K.jpg      (S, S, 3) JPEG, K = 0 .. views-1
    ROOT/SYNSET/OBJECT_ID/latent_K.npy     (7,) float32, see `scene`
    ROOT/train_images.npy, val_images.npy  (N,) str object paths "/SYNSET/OBJECT_ID/"
    ROOT/train_labels.npy, val_labels.npy  (N,) int64 class labels
    ROOT/render_info.json                  how it was rendered, and label -> synset -> class name

The split is by object (all views of an object land on one side), stratified per class.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from PIL import Image

JPEG_QUALITY = 95
SPLITS = ("train", "val")


def object_path(synset: str, object_id: str) -> str:
    """The object's path as 3DIEBench's split files store it: '/SYNSET/OBJECT_ID/'."""
    return f"/{synset}/{object_id}/"


def write_view(obj_dir: pathlib.Path, k: int, pixels: np.ndarray, latent: np.ndarray, quality: int = JPEG_QUALITY):
    """Writes `image_k.jpg` ((S, S, 3) uint8) and `latent_k.npy` ((7,) saved as float32) into `obj_dir`."""
    Image.fromarray(pixels).save(obj_dir / f"image_{k}.jpg", quality=quality)
    np.save(obj_dir / f"latent_{k}.npy", np.asarray(latent, np.float32))


def split_objects(labels: np.ndarray, seed: int, val_fraction: float = 0.2) -> np.ndarray:
    """Stratified object split: a boolean (N,) mask of the validation objects.

    Per class, round(n * val_fraction) objects (at least one when the class has two or more and
    val_fraction > 0) go to val, chosen by a generator seeded with (seed, label).
    """
    labels = np.asarray(labels)
    is_val = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_val = int(round(len(members) * val_fraction))
        if val_fraction > 0 and len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        chosen = np.random.default_rng([seed, int(label), 2]).permutation(members)[:n_val]
        is_val[chosen] = True
    return is_val


def write_splits(root: pathlib.Path, paths: list[str], labels: list[int], seed: int, val_fraction: float = 0.2):
    """Writes the four split files; returns {"train": n_train, "val": n_val}."""
    paths_arr, labels_arr = np.asarray(paths, dtype=str), np.asarray(labels, np.int64)
    is_val = split_objects(labels_arr, seed, val_fraction)
    counts = {}
    for split, mask in (("train", ~is_val), ("val", is_val)):
        np.save(root / f"{split}_images.npy", paths_arr[mask])
        np.save(root / f"{split}_labels.npy", labels_arr[mask])
        counts[split] = int(mask.sum())
    return counts


def write_info(root: pathlib.Path, info: dict) -> None:
    """`render_info.json`: the settings and classes of a render (no times, so reruns are identical)."""
    (root / "render_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_info(root: pathlib.Path) -> dict:
    path = pathlib.Path(root) / "render_info.json"
    return json.loads(path.read_text()) if path.exists() else {}
