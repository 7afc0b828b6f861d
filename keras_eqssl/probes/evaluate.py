"""Run the probes that fit a data source on one or more exported encoders, and write the report.

    evaluate_models({"trained": "runs/default/export", "random init": "runs/default/export_init"},
                    EvalData(threedie_root="~/.cache/keras_eqssl/m3d-360x12-32px-seed0"), "runs/default/report")

On a 3DIEBench-format root (features of every view are extracted once per model):
- SIE's relative rotation / colour probes: heads fit on pairs of the train split's objects, scored
  on the val split's objects;
- the augmentation-parameter probe on all the renders, grouped by object (held-out objects);
- linear and kNN classification of the object class (train-split views -> val-split views);
- a 2-D map of the val features coloured by class and by rotation.

On labelled images (`EvalData.images`): the parameter probe grouped by `groups` (photos) and
classification of the first 75% against the last 25%.

Every figure is a mean ± std over `EvalData.repeats` repeats, next to the constant predictor.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.results import FAMILIES, PARTS, PROBE_HEADS, ModelResults, key_numbers

REPEATS_TEXT = (
    "Each figure is the mean ± std over {repeats} repeats of the probe. A 3DIEBench repeat draws "
    "{pairs} train pairs per train object and a bootstrap sample of the val objects (all their pairs); a "
    "parameter-probe repeat holds out {test:.0%} of the {groups} (never seen by its heads); a classification "
    "repeat is a bootstrap sample of the test {groups}. Linear heads are ridge regressions (one-hot for classes) whose "
    "penalty is chosen by cross-validation grouped by {group}; MLP heads stop early on held-out {groups}."
)


@dataclasses.dataclass
class EvalData:
    """What to evaluate on: a 3DIEBench-format root, or labelled images.

    Attributes:
        threedie_root: a 3DIEBench-format root (real, or rendered by `keras-eqssl-render`).
        images: `(images uint8 (N, H, W, 3), labels (N,))` when there is no root.
        groups: (N,) the photo each image comes from (default: each image its own); the parameter
            probe holds out whole groups.
        image_size: resize renders to this size before encoding (None: as stored).
        families: parameter-probe families (`keras_eqssl.probes.results.FAMILIES`; () skips it).
        parts: encoder outputs to probe.
        heads: trained regression heads ("linear", "mlp"); the constant predictor is always scored.
        repeats: repeats per probe (the spread of every figure).
        pairs_per_object: 3DIEBench train pairs per object and repeat.
        param_test_fraction: share of groups the parameter probe holds out.
        param_test_groups: a fixed set of groups the parameter probe holds out instead (its heads
            fit once on the others; each repeat scores a bootstrap sample of these groups).
        description: how the data was made, for the report.
        group_name: what a group of `images` is, for the report ("photo" by default; e.g. "tile").
        no_labels: why `images` has no labels (its labels are None): the classification probes are
            skipped with this reason.
    """

    threedie_root: str | None = None
    images: tuple | None = None
    groups: np.ndarray | None = None
    image_size: int | None = None
    families: Sequence[str] = FAMILIES
    parts: Sequence[str] = PARTS
    heads: Sequence[str] = ("linear",)
    repeats: int = 5
    pairs_per_object: int = 32
    param_test_fraction: float = 0.25
    param_test_groups: Sequence | None = None
    description: str = ""
    group_name: str = "photo"
    no_labels: str = ""

    def __post_init__(self):
        unknown = [h for h in self.heads if h not in PROBE_HEADS]
        if unknown:
            raise ValueError(f"EvalData: unknown heads {unknown}; known: {list(PROBE_HEADS)}.")
        if self.repeats < 1:
            raise ValueError(f"EvalData: repeats must be >= 1; received {self.repeats}.")


def image_eval_data(images, labels, source: str, no_labels: str = "", **common) -> EvalData:
    """`EvalData` for the images of an image source: `skimage_photos` crops are grouped by photo
    (the parameter probe holds out whole photos); other sources' images are their own group.

    `labels` None (unlabelled images, e.g. a flat image folder) skips the classification probes;
    `no_labels` then says why, in the report (default: "no labels").
    """
    groups = np.asarray(labels) if source == "skimage_photos" else None
    held = "photos" if groups is not None else "images"
    classes = "classification: the first 75% fit, the last 25% score" if labels is not None else "no labels"
    return EvalData(
        images=(np.asarray(images), None if labels is None else np.asarray(labels)),
        groups=groups,
        description=f"Data: {source}, {len(images)} images ({classes}; the parameter probe holds out whole {held}).",
        no_labels=(no_labels or "no labels") if labels is None else "",
        **common,
    )


def source_eval_data(config, **common) -> EvalData:
    """`EvalData` of the first `config.data.num_images` images of `config.data`'s source
    (`keras_eqssl.data.source_from_config`); an unlabelled source (a flat image folder) skips the
    classification probes, and `EvalData.no_labels` says why.

    Raises:
        ValueError naming the source when it yields no image.
    """
    from keras_eqssl.data import source_from_config

    d = config.data
    batches = list(source_from_config(config).take(d.num_images).batch(4096).as_numpy_iterator())
    if not batches:
        raise ValueError(f"config.data.source={d.source!r} yields no images to evaluate on")
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches]) if "label" in batches[0] else None
    no_labels = ""
    if labels is None and d.source == "image_folder":
        from keras_eqssl.data.image_folder import NO_LABELS

        no_labels = NO_LABELS.format(root=os.path.abspath(d.root))
    return image_eval_data(images, labels, d.source, no_labels=no_labels, **common)


def load_views(data: EvalData) -> dict:
    """`{"train": views, "val": views}` of a 3DIEBench root (`keras_eqssl.data.threedie_views`)."""
    from keras_eqssl.data.threedie_views import threedie_views

    return {split: threedie_views(data.threedie_root, split, image_size=data.image_size) for split in ("train", "val")}


def evaluate_encoder(
    encode,
    data: EvalData,
    *,
    views: Mapping | None = None,
    seed: int = 0,
    progress: bool | None = None,
    features: dict | None = None,
) -> ModelResults:
    """All the probes `data` allows, for one encoder.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}`.
        data: what to evaluate on.
        views: `load_views(data)`, to load the renders once for several encoders.
        seed: the probes' draws (the same seed gives paired repeats across encoders).
        progress: tqdm bars.
        features: a dict to receive the renders' features, `{"train": {part: (N, C)}, "val": ...}`
            (for plots, without encoding again).

    Returns:
        A `ModelResults` (its `info` holds the probes' settings and any reason a probe was skipped).
    """
    from keras_eqssl.probes.classification import classification_scores
    from keras_eqssl.probes.features import extract
    from keras_eqssl.probes.params import extract_param_features, param_scores
    from keras_eqssl.probes.threedie import threedie_scores, view_features

    start = time.perf_counter()
    parts = list(data.parts)
    scores, skipped = [], []
    if data.threedie_root:
        views = views or load_views(data)
        sets = {split: view_features(encode, v, parts, progress=progress, split=split) for split, v in views.items()}
        if features is not None:
            features.update({split: sets[split]["features"] for split in sets})
        scores += threedie_scores(
            sets["train"], sets["val"], parts=parts, heads=data.heads, repeats=data.repeats,
            pairs_per_object=data.pairs_per_object, seed=seed,
        )  # fmt: skip
        found, why = classification_scores(sets["train"], sets["val"], parts=parts, repeats=data.repeats, seed=seed)
        probe_images = np.concatenate([views["train"]["images"], views["val"]["images"]])
        probe_features = {p: np.concatenate([sets["train"]["features"][p], sets["val"]["features"][p]]) for p in parts}
        groups = np.concatenate([views["train"]["object"], views["val"]["object"] + views["train"]["object"].max() + 1])
        group_name = "object"
    elif data.images is not None:
        images = np.asarray(data.images[0])
        labels = np.full(len(images), -1) if data.images[1] is None else np.asarray(data.images[1])
        groups = np.arange(len(images)) if data.groups is None else np.asarray(data.groups)
        cut = int(len(images) * 0.75)
        feats = extract(encode, images, 256, parts=parts, progress=progress, desc="images")
        train = {"features": {p: f[:cut] for p, f in feats.items()}, "label": labels[:cut], "group": groups[:cut]}
        test = {"features": {p: f[cut:] for p, f in feats.items()}, "label": labels[cut:], "group": groups[cut:]}
        if data.images[1] is None:
            found, why = [], [f"classification skipped: {data.no_labels or 'no labels'}."]
        else:
            found, why = classification_scores(train, test, parts=parts, repeats=data.repeats, seed=seed)
        probe_images, probe_features = images, feats
        group_name = data.group_name
    else:
        raise ValueError("evaluate_encoder: EvalData needs a threedie_root or images; both are empty.")
    scores += found
    skipped += why
    if data.families:
        feats = extract_param_features(encode, probe_images, list(data.families), parts=parts, seed=seed,
                                       progress=progress, original=probe_features)  # fmt: skip
        scores += param_scores(
            feats, groups, parts=parts, heads=data.heads, repeats=data.repeats,
            test_fraction=data.param_test_fraction, seed=seed, test_groups=data.param_test_groups,
        )  # fmt: skip
    probes_text = REPEATS_TEXT
    if data.param_test_groups is not None:
        probes_text = probes_text.replace(
            "a parameter-probe repeat holds out {test:.0%} of the {groups} (never seen by its heads)",
            "the parameter probe's heads fit once on the other {groups} and each repeat scores a bootstrap sample of "
            "the held-out {groups} (never seen by its heads)",
        )
    info = {
        "probes": probes_text.format(
            repeats=data.repeats,
            pairs=data.pairs_per_object,
            test=data.param_test_fraction,
            groups=group_name + "s",
            group=group_name,
        ),  # fmt: skip
        "num_probe_images": int(len(probe_images)),
        "num_groups": int(len(np.unique(groups))),
        "eval_seconds": time.perf_counter() - start,
    }
    if skipped:
        info["skipped"] = skipped
    return ModelResults(scores, info)


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

    Returns `{"paths": {...}, "results": {name: ModelResults}, "key_numbers": {name: {metric: Score}}}`.
    """
    from keras_eqssl.export.encoder import load_encoder
    from keras_eqssl.probes.plots import embedding_map
    from keras_eqssl.probes.report import write_report

    os.makedirs(out_dir, exist_ok=True)
    results, images = {}, dict(images or {})
    views = load_views(data) if data.threedie_root else None
    for name, path in models.items():
        encode = load_encoder(path)
        feats: dict = {}
        results[name] = evaluate_encoder(encode, data, views=views, seed=seed, progress=progress, features=feats)
        if train_info and name in train_info:
            results[name].info["train"] = dict(train_info[name])
        if views is not None:
            val, feats = views["val"], feats["val"]
            part = "equivariant" if "equivariant" in feats else "embedding"
            safe = "".join(c if c.isalnum() else "_" for c in name)
            png = os.path.join(out_dir, f"map_{safe}.png")
            colourings = {"class": val["label"], "rotation (z, rad)": val["latents"][:, 2]}
            embedding_map(feats[part], png, colourings, method="tsne", seed=seed)
            images[f"2-D map of {name} ({part} features, val renders)"] = png
    notes = list(notes)
    if data.description:
        notes.insert(0, data.description)
    paths = write_report(results, out_dir, title=title, command=command, images=images, notes=notes, baseline=baseline)
    return {"paths": paths, "results": results, "key_numbers": key_numbers(results)}
