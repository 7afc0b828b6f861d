"""A contact sheet of a rendered root: one row per class (its first object), the first views across.

Each row is labelled with the synset, class name and object id, and each tile with its floor hue
(h), light hue (l) and light angles, so a glance shows the objects, the floor colours and the
moving spot light.
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image, ImageDraw

from keras_eqssl.data.render import writer

LABEL_WIDTH = 170


def first_objects(root: pathlib.Path, per_class: int = 1) -> list[tuple[str, str, int]]:
    """(synset, object_id, label) of the first `per_class` objects of each class (from the split files)."""
    paths, labels = [], []
    for split in writer.SPLITS:
        p = root / f"{split}_images.npy"
        if p.exists():
            paths += list(np.load(p))
            labels += list(np.load(root / f"{split}_labels.npy"))
    if not paths:
        raise FileNotFoundError(f"{root} has no train_images.npy / val_images.npy: is it a rendered root?")
    rows, seen = [], {}
    for path, label in sorted(zip(paths, labels), key=lambda pl: (int(pl[1]), pl[0])):
        if seen.get(int(label), 0) < per_class:
            seen[int(label)] = seen.get(int(label), 0) + 1
            synset, object_id = path.strip("/").split("/")
            rows.append((synset, object_id, int(label)))
    return rows


def contact_sheet(
    root: str | pathlib.Path, out: str | pathlib.Path, views: int = 8, per_class: int = 1
) -> pathlib.Path:
    """Draws the sheet of `root` into the PNG `out`; returns its path.

    Args:
        root: a rendered root (split files + SYNSET/OBJECT_ID/image_K.jpg).
        out: PNG path.
        views: views per row (the first ones).
        per_class: objects shown per class.
    """
    root, out = pathlib.Path(root), pathlib.Path(out)
    names = {c["synset"]: c["name"] for c in writer.read_info(root).get("classes", [])}
    rows = first_objects(root, per_class)
    tiles = []
    for synset, object_id, _label in rows:
        obj = root / synset / object_id
        ks = sorted(int(p.stem.split("_")[1]) for p in obj.glob("image_*.jpg"))[:views]
        tiles.append(
            [(Image.open(obj / f"image_{k}.jpg").convert("RGB"), np.load(obj / f"latent_{k}.npy")) for k in ks]
        )
    size = tiles[0][0][0].size[0]
    cols = max(len(t) for t in tiles)
    sheet = Image.new("RGB", (LABEL_WIDTH + cols * size, len(rows) * size), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, ((synset, object_id, label), row) in enumerate(zip(rows, tiles)):
        y = r * size
        draw.text((6, y + 6), f"{label}: {names.get(synset, '')}\n{synset}\n{object_id}", fill=(0, 0, 0))
        for c, (img, lat) in enumerate(row):
            x = LABEL_WIDTH + c * size
            sheet.paste(img, (x, y))
            note = f"h{lat[3]:.2f} l{lat[6]:.2f}\nt{np.degrees(lat[4]):.0f} p{np.degrees(lat[5]):.0f}"
            draw.text((x + 3, y + size - 24), note, fill=(255, 255, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
