"""A tiny 3DIEBench-format root for tests and benchmarks: patterned JPEGs (Pillow) + latents (numpy).

Independent of the renderer on purpose: only the on-disk format is shared.
`write_threedie(root)` writes `<root>/<synset>/<object>/image_k.jpg` + `latent_k.npy` and the four
split files, and returns the root.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image


def random_latents(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 7) float32 latents in 3DIEBench's ranges."""
    return np.concatenate(
        [
            rng.uniform(-math.pi / 2, math.pi / 2, (count, 3)),
            rng.uniform(0, 1, (count, 1)),
            rng.uniform(0, math.pi / 4, (count, 1)),
            rng.uniform(0, 2 * math.pi, (count, 1)),
            rng.uniform(0, 1, (count, 1)),
        ],
        axis=1,
    ).astype(np.float32)


def patterned_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: a smooth random colour gradient plus noise (compresses like a render)."""
    y, x = np.mgrid[0:size, 0:size] / size
    coef = rng.uniform(-1, 1, (3, 3))
    image = 0.5 + 0.25 * (coef[:, 0, None, None] * x + coef[:, 1, None, None] * y + coef[:, 2, None, None] * x * y)
    image = image.transpose(1, 2, 0) + rng.normal(0, 0.05, (size, size, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_threedie(
    root: str | os.PathLike,
    num_train: int = 6,
    num_val: int = 3,
    num_views: int = 5,
    size: int = 32,
    num_synsets: int = 2,
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Writes a 3DIEBench-format root and returns it.

    Objects are `<synset>/obj<i>` with synsets "0000000<c>", label = synset index; object i goes to
    train for i < num_train, else val. Split files hold paths like "/00000001/obj3/" (as the real set).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    entries = {"train": [], "val": []}
    for i in range(num_train + num_val):
        label = i % num_synsets
        synset = f"{label:08d}"
        obj = root / synset / f"obj{i}"
        obj.mkdir(parents=True, exist_ok=True)
        for k, latent in enumerate(random_latents(rng, num_views)):
            Image.fromarray(patterned_image(rng, size)).save(obj / f"image_{k}.jpg", quality=quality)
            np.save(obj / f"latent_{k}.npy", latent)
        entries["train" if i < num_train else "val"].append((f"/{synset}/obj{i}/", label))
    for split, rows in entries.items():
        np.save(root / f"{split}_images.npy", np.array([p for p, _ in rows]))
        np.save(root / f"{split}_labels.npy", np.array([lab for _, lab in rows], np.int64))
    return root
