"""SIE's 3DIEBench evaluation on frozen features: relative rotation and colour from a pair of views.

Protocol (Garrido et al., ICML 2023; facebookresearch/SIE `eval_angle_prediction.py`,
`eval_color_prediction.py`, `eval_classification.py`):

- pairs of two distinct renders (x1, x2) of the same object: the train split fits the heads, the
  val split scores them; `pairs_per_object` pairs per object (SIE: one fresh pair per object and
  epoch), drawn by `keras_eqssl.data.threedie.threedie_pairs` as a pure function of the seed;
- input: `concat[f(x1), f(x2)]` for a part of the representation: "embedding" (the whole
  vector, SIE's `--equi-dims 512`), "equivariant" (SIE's `--equi-dims 256`) or "invariant"
  (`--inv-part`); every requested part is reported;
- targets: "rotation" = the quaternion (x, y, z, w) of R1⁻¹R2 (4, not sign-canonicalised, as SIE),
  "color" = (floor hue, spot-light hue) differences (2); optionally "class" = the object's class
  from f(x1) alone (SIE's classification probe, top-1);
- heads: linear and MLP (`keras_eqssl.probes.heads`; SIE's paper numbers use its MLP "deep end");
- metrics: R² per dimension (sklearn's), their mean, and SIE's global-mean R² (`r2_global_mean`,
  the number SIE reports; see `keras_eqssl.probes.r2`).

Differences from SIE's scripts (on purpose, for speed on frozen features): features are
extracted once (not re-rendered per epoch), heads train on standardised inputs and targets with
early stopping on 10% of the train pairs (SIE: 300 epochs, Adam 1e-3, no standardisation; pass
`head_options={"epochs": 300, "patience": None, "standardize_targets": False, "batch_size": 256,
"learning_rate": 1e-3}` and `heads={"mlp": {"hidden_units": (1024, 1024), "batch_norm": False}}`
to follow it to the letter).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.features import PARTS, Encode, check_choices, extract
from keras_eqssl.probes.heads import resolve_heads, train_head
from keras_eqssl.probes.r2 import r2_global_mean, r2_mean, r2_per_dim

# target name -> (batch key, component names; None for the class label)
TARGETS = {
    "rotation": ("rel_rotation", ("qx", "qy", "qz", "qw")),
    "color": ("rel_color", ("floor_hue", "light_hue")),
    "class": ("label", None),
}


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict:
    """`{"r2": {name: R²}, "r2_mean": mean, "r2_global": SIE's global-mean R²}` (JSON-able floats)."""
    per_dim = r2_per_dim(y_true, y_pred)
    return {
        "r2": {str(n): float(v) for n, v in zip(names, per_dim)},
        "r2_mean": r2_mean(y_true, y_pred),
        "r2_global": r2_global_mean(y_true, y_pred),
    }


def _same_features(a: dict, b: dict) -> bool:
    return all(a[v].shape == b[v].shape and np.array_equal(a[v], b[v]) for v in ("v1", "v2"))


def threedie_probe(
    encode: Encode,
    root: str | os.PathLike,
    *,
    parts: Sequence[str] = PARTS,
    targets: Sequence[str] = ("rotation", "color"),
    heads: Sequence[str] | Mapping = ("linear", "mlp"),
    head_options: Mapping | None = None,
    pairs_per_object: int = 1,
    val_pairs_per_object: int | None = None,
    image_size: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    model_key: str | None = None,
    check_files: bool = False,
    progress: bool | None = None,
) -> dict:
    """Runs SIE's 3DIEBench rotation / colour (and optionally class) probes on frozen features.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}` (`encoder_from_saved_model`, ...).
        root: a 3DIEBench-format root (the real set, or one our renderer wrote).
        parts: which outputs of the encoder to probe, each reported separately.
        targets: any of "rotation", "color", "class" (see the module doc).
        heads: "linear" and/or "mlp", or `{name: train_head kwargs}` (see `resolve_heads`).
        head_options: `train_head` kwargs for every head (epochs, batch_size, patience, seed, ...).
        pairs_per_object: train pairs drawn per object (epochs of `threedie_pairs`).
        val_pairs_per_object: val pairs per object (default: `pairs_per_object`).
        image_size: resize the renders to S x S before encoding (default: as stored).
        batch_size: images per `encode` call.
        seed: the pair draws (and, unless `head_options` sets one, the heads' seed).
        cache: a directory for the extracted features (see `extract`).
        model_key: names the weights for the cache (default `encode.cache_key`).
        check_files: read every file's header when listing the split (slow on the full set).
        progress: tqdm bars (None: for long extractions).

    Returns:
        A JSON-able dict:

            {"protocol": "3diebench", "root", "seed", "pairs_per_object", "val_pairs_per_object",
             "num_train", "num_val", "parts", "targets", "heads",
             "results": {part: {head: {
                 "rotation": {"r2": {"qx", "qy", "qz", "qw"}, "r2_mean", "r2_global"},
                 "color":    {"r2": {"floor_hue", "light_hue"}, "r2_mean", "r2_global"},
                 "class":    {"top1"}}}}}

        `r2_global` is the number SIE reports; `r2_mean` is sklearn's `r2_score`.

    Example:
    >>> encode = encoder_from_saved_model("runs/sie/export")                      # doctest: +SKIP
    >>> out = threedie_probe(encode, "/data/3DIEBench", parts=["equivariant"])     # doctest: +SKIP
    >>> out["results"]["equivariant"]["mlp"]["rotation"]["r2_global"]             # doctest: +SKIP
    0.73
    """
    import tensorflow as tf

    from keras_eqssl.data.threedie import threedie_pairs
    from keras_eqssl.data.threedie_index import list_objects

    parts = check_choices("part", parts, PARTS)
    targets = check_choices("3DIEBench target", targets, TARGETS)
    head_specs = resolve_heads(heads, {"seed": seed, **dict(head_options or {})})
    if pairs_per_object < 1:
        raise ValueError(f"threedie_probe: pairs_per_object must be >= 1; received {pairs_per_object}.")
    val_pairs = pairs_per_object if val_pairs_per_object is None else int(val_pairs_per_object)
    if val_pairs < 1:
        raise ValueError(f"threedie_probe: val_pairs_per_object must be >= 1; received {val_pairs}.")

    features = {}
    for split, count in (("train", pairs_per_object), ("val", val_pairs)):
        objects = list_objects(root, split, check_files=check_files)
        ds = threedie_pairs(
            root, split, seed=seed, num_epochs=count, shuffle=False, image_size=image_size, objects=objects
        )
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(objects) * count))
        data_key = f"3diebench:{objects.root}:{split}:seed={seed}:pairs={count}:size={image_size}"
        features[split] = extract(
            encode,
            ds,
            batch_size,
            parts=parts,
            cache=cache,
            model_key=model_key,
            data_key=data_key,
            progress=progress,
            desc=f"3DIEBench {split}",
        )

    train, val = features["train"], features["val"]
    results: dict = {}
    done: dict[str, dict] = {}  # part -> its per-view features, to reuse results of identical parts
    for part in parts:
        views = {split: {v: f["views"][v][part] for v in ("v1", "v2")} for split, f in features.items()}
        twin = next((p for p, seen in done.items() if all(_same_features(views[s], seen[s]) for s in views)), None)
        done[part] = views
        if twin is not None:  # no split in the model: this part is the same vector as an earlier one
            results[part] = copy.deepcopy(results[twin])
            continue
        x_train = np.concatenate([views["train"]["v1"], views["train"]["v2"]], axis=1)
        x_val = np.concatenate([views["val"]["v1"], views["val"]["v2"]], axis=1)
        results[part] = {}
        for head_name, kwargs in head_specs.items():
            scores = {}
            for target in targets:
                key, names = TARGETS[target]
                if names is None:  # class: one view, as SIE's classification probe
                    head = train_head(
                        views["train"]["v1"], train[key].astype(np.int64), task="classification", **kwargs
                    )
                    logits = head.predict(views["val"]["v1"])
                    scores[target] = {"top1": float(np.mean(logits.argmax(axis=1) == val[key]))}
                else:
                    head = train_head(x_train, train[key], task="regression", **kwargs)
                    scores[target] = regression_scores(val[key], head.predict(x_val), names)
            results[part][head_name] = scores

    return {
        "protocol": "3diebench",
        "root": os.path.abspath(os.fspath(root)),
        "seed": int(seed),
        "pairs_per_object": int(pairs_per_object),
        "val_pairs_per_object": int(val_pairs),
        "num_train": int(len(train["rel_rotation"])),
        "num_val": int(len(val["rel_rotation"])),
        "parts": list(parts),
        "targets": list(targets),
        "heads": list(head_specs),
        "results": results,
    }
