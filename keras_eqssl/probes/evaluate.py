"""Run the probes that fit a data source on one or more exported encoders, and write the report.

    evaluate_models({"trained": "runs/default/export", "random init": "runs/default/export_init"},
                    EvalData(threedie_root="~/.cache/keras_eqssl/m3d-240x12-64px-seed0"), "runs/default/report")

On a 3DIEBench-format root: SIE's relative rotation / colour probes (and class top-1), the
augmentation-parameter probe on the renders, linear and kNN classification, and a 2-D map of the
val features coloured by class and by rotation. On an image source (`images`, uint8 arrays with
labels): the parameter probe and classification.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.report import (
    from_classification_probe,
    from_param_probe,
    from_threedie_probe,
    key_numbers,
    merge_sections,
    write_report,
)


@dataclasses.dataclass
class EvalData:
    """What to evaluate on: a 3DIEBench-format root, and/or labelled images.

    Attributes:
        threedie_root: a 3DIEBench-format root (real, or rendered by `keras-eqssl-render`).
        images: `(train_images, train_labels, test_images, test_labels)`, uint8 `(N, H, W, 3)`.
        image_size: resize renders to this size before encoding (None: as stored).
        families: parameter-probe families (see `keras_eqssl.probes.FAMILIES`).
        parts: encoder outputs to probe.
        heads: probe heads ("linear", "mlp").
        pairs_per_object: 3DIEBench train pairs per object (val: one).
        description: how the data was made, for the report.
    """

    threedie_root: str | None = None
    images: tuple | None = None
    image_size: int | None = None
    families: Sequence[str] = ("rotation", "color", "blur", "translation", "all")
    parts: Sequence[str] = ("embedding", "invariant", "equivariant")
    heads: Sequence[str] = ("linear", "mlp")
    pairs_per_object: int = 4
    description: str = ""


def threedie_arrays(root: str, split: str, image_size: int | None = None, seed: int = 0) -> dict:
    """First views of one pair per object: `{"images" uint8, "labels", "rotation" (euler z, rad)}`."""
    from keras_eqssl.data.threedie import threedie_pairs

    images, labels, rotation = [], [], []
    ds = threedie_pairs(root, split, seed=seed, num_epochs=1, shuffle=False, image_size=image_size)
    for batch in ds.batch(256).as_numpy_iterator():
        images.append(batch["views"]["v1"])
        labels.append(batch["label"])
        rotation.append(batch["latent"]["v1"][:, 2])
    return {
        "images": np.concatenate(images),
        "labels": np.concatenate(labels),
        "rotation": np.concatenate(rotation),
    }


def evaluate_encoder(encode, data: EvalData, *, seed: int = 0, progress: bool | None = None) -> dict:
    """All the probes `data` allows, for one encoder; returns one model's results (report format)."""
    from keras_eqssl.probes.classification import classification_probe
    from keras_eqssl.probes.params import param_probe
    from keras_eqssl.probes.threedie import threedie_probe

    start = time.perf_counter()
    sections = []
    if data.threedie_root:
        out = threedie_probe(
            encode,
            data.threedie_root,
            parts=data.parts,
            targets=("rotation", "color"),
            heads=data.heads,
            pairs_per_object=data.pairs_per_object,
            val_pairs_per_object=1,
            image_size=data.image_size,
            seed=seed,
            progress=progress,
        )
        sections.append(from_threedie_probe(out))
        train = threedie_arrays(data.threedie_root, "train", data.image_size, seed)
        test = threedie_arrays(data.threedie_root, "val", data.image_size, seed)
        train_xy = (train["images"], train["labels"])
        test_xy = (test["images"], test["labels"])
        probe_images = np.concatenate([train["images"], test["images"]])
    elif data.images is not None:
        train_x, train_y, test_x, test_y = data.images
        train_xy, test_xy = (train_x, train_y), (test_x, test_y)
        probe_images = np.concatenate([train_x, test_x])
    else:
        raise ValueError("evaluate_encoder: EvalData needs a threedie_root or images; both are empty.")
    if data.families:
        out = param_probe(
            encode, probe_images, families=data.families, parts=data.parts, heads=data.heads, seed=seed,
            progress=progress,
        )  # fmt: skip
        sections.append(from_param_probe(out))
    out = classification_probe(encode, train_xy, test_xy, parts=data.parts, progress=progress)
    sections.append(from_classification_probe(out))
    merged = merge_sections(*sections)
    merged["eval_seconds"] = time.perf_counter() - start
    return merged


def evaluate_models(
    models: Mapping[str, str],
    data: EvalData,
    out_dir: str | os.PathLike,
    *,
    title: str = "keras_eqssl evaluation",
    command: str | Sequence[str] | None = None,
    train_info: Mapping[str, Mapping] | None = None,
    images: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    baseline: str | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict:
    """Evaluates each SavedModel (`{name: path}`), writes `report.md`, `metrics.json` and plots.

    Returns `{"paths": {...}, "results": {name: results}, "key_numbers": {name: {...}}}`.
    """
    from keras_eqssl.probes.features import encoder_from_saved_model
    from keras_eqssl.probes.plots import embedding_map

    os.makedirs(out_dir, exist_ok=True)
    results, images = {}, dict(images or {})
    val = threedie_arrays(data.threedie_root, "val", data.image_size, seed) if data.threedie_root else None
    for name, path in models.items():
        encode = encoder_from_saved_model(path)
        results[name] = evaluate_encoder(encode, data, seed=seed, progress=progress)
        if train_info and name in train_info:
            results[name]["train"] = dict(train_info[name])
        if val is not None:
            feats = encode(val["images"])
            part = "equivariant" if "equivariant" in feats else "embedding"
            safe = "".join(c if c.isalnum() else "_" for c in name)
            png = os.path.join(out_dir, f"map_{safe}.png")
            embedding_map(
                feats[part],
                png,
                {"class": val["labels"], "rotation (z, rad)": val["rotation"]},
                method="tsne",
                seed=seed,
            )
            images[f"2-D map of {name} ({part} features, val renders)"] = png
    notes = list(notes)
    if data.description:
        notes.insert(0, data.description)
    paths = write_report(
        {n: {k: v for k, v in r.items() if k != "eval_seconds"} for n, r in results.items()},
        out_dir,
        title=title,
        command=command,
        images=images,
        notes=notes,
        baseline=baseline,
    )
    return {"paths": paths, "results": results, "key_numbers": key_numbers(results)}
