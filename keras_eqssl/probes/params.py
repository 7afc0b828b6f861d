"""The flagship paper's protocol: regress augmentation parameters from a pair of frozen features.

Protocol (Wang, Krajsek & Scharr, arXiv 2412.03314, as described in the AAAI-26 follow-up,
arXiv 2503.18753, Table 2): take an image I and a transform g with sampled parameters θ, encode
both with the frozen encoder f, and regress θ from `concat[f(I), f(g(I))]` with a light head;
score R² per parameter. Families and ranges (the paper's):

| family        | ops (keras_eqssl.augment)                  | parameters regressed                     |
|---------------|--------------------------------------------|------------------------------------------|
| "rotation"    | `Rotation(45)`: U(-45°, 45°), black fill    | rotation (degrees, counter-clockwise)   |
| "color"       | `ColorJitter(0.4, 0.4, 0.4, 0.1)`          | brightness, contrast, saturation factors in [0.6, 1.4], hue in [-0.1, 0.1] turns (random order, not regressed) |
| "blur"        | `GaussianBlur((0.1, 2.0))`                  | blur (sigma, pixels)                     |
| "translation" | `Translation(10)`: U(-10, 10) px each      | tx, ty (pixels; right / down)            |
| "all"         | colour, blur, rotation, translation in turn | all seven at once                        |
| "crop"        | `RandomResizedCrop(None, (0.3, 1))`, resized back to the input size | crop box y0, x0, h, w, its area and aspect ratio (not in "all"; GTSA's crop sensitivity) |

One family at a time, and all combined ("all"). Parameters are drawn per image with stateless
seeds, a pure function of (`seed`, the family's name, the image's index, the repeat): a run is
reproducible, and the batch size and the other families asked for change nothing. Translation is in pixels of the input whatever its size (the paper's images are
224 px). Custom families: pass `families={"name": [op, ...]}` with any ops of
`keras_eqssl.augment` (their continuous parameters are regressed).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from keras_eqssl.probes.features import Encode, _check_images, _encode_batch, _progress, check_choices
from keras_eqssl.probes.repeats import (
    Collector,
    bootstrap_groups,
    check_heads,
    check_repeats,
    fit_regressors,
    predict_2d,
)
from keras_eqssl.probes.results import FAMILIES, KNOWN_FAMILIES, PARTS, Score

_ALL_ORDER = ("color", "blur", "rotation", "translation")


def family_ops(name: str) -> list:
    """The ops of a family of the paper's protocol (see the module doc); ValueError for others.

    Example:
    >>> [type(op).__name__ for op in family_ops("all")]
    ['ColorJitter', 'GaussianBlur', 'Rotation', 'Translation']
    """
    from keras_eqssl.augment import ColorJitter, GaussianBlur, RandomResizedCrop, Rotation, Translation

    makers = {
        "rotation": lambda: Rotation(45.0),
        "color": lambda: ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        "blur": lambda: GaussianBlur(sigma=(0.1, 2.0)),
        "translation": lambda: Translation(10.0),
        "crop": lambda: RandomResizedCrop(None, scale=(0.3, 1.0)),
    }
    if name == "all":
        return [makers[k]() for k in _ALL_ORDER]
    if name not in makers:
        raise ValueError(f"Unknown parameter family {name!r}; known: {list(KNOWN_FAMILIES)}.")
    return [makers[name]()]


@functools.cache
def _family_transformer(name: str):
    """`_transformer` of a named family, traced once per process (evaluating many encoders reuses it)."""
    return _transformer(family_ops(name))


def _resolve_families(families) -> dict[str, list]:
    if isinstance(families, Mapping):
        out = {}
        for name, ops in families.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"param_probe: family names must be non-empty strings without '/'; received {name!r}.")
            ops = list(ops) if ops is not None else family_ops(name)
            if not ops:
                raise ValueError(f"param_probe: family {name!r} has no ops.")
            out[str(name)] = ops
        return out
    return {name: family_ops(name) for name in check_choices("parameter family", families, KNOWN_FAMILIES)}


def target_names(ops) -> list[str]:
    """Names of the continuous parameters `ops` record, in order (the regression targets)."""
    names = []
    for op in ops:
        for spec in op.param_specs():
            if spec.kind != "continuous":
                continue
            size = int(np.prod(spec.shape))
            if spec.names and len(spec.names) == size:
                names.extend(spec.names)
            elif size == 1:
                names.append(spec.key)
            else:
                names.extend(f"{spec.key}_{i}" for i in range(size))
    if not names:
        raise ValueError(f"param_probe: the ops {ops} record no continuous parameter to regress.")
    if len(set(names)) != len(names):
        raise ValueError(f"param_probe: two ops record parameters with the same name: {names}; rename an op.")
    return names


def _name_key(name: str) -> int:
    """A stable int32 for a family name (the seed of its draws)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _transformer(ops):
    """A tf.function: (uint8 images, seed (2,), index of the first image) -> (uint8 transformed
    images, (B, P) float32 targets).

    Image i's parameters come from `op.sample(1, fold(seed, op number, i))`: a pure function of
    the seed and the image's index, whatever the batch size.
    """
    import tensorflow as tf

    from keras_eqssl.augment.images import to_float_rgb
    from keras_eqssl.augment.seeds import fold

    @tf.function(reduce_retracing=True)
    def run(images, seed, first):
        x = to_float_rgb(images, where="param_probe")
        b, hw = tf.shape(x)[0], tf.shape(x)[1:3]
        indices = first + tf.range(b)
        targets = []
        for i, op in enumerate(ops):
            specs = op.param_specs()
            signature = {s.key: tf.TensorSpec(s.shape, s.dtype) for s in specs}

            def sample_one(j, i=i, op=op):
                return {k: v[0] for k, v in op.sample(1, fold(seed, i, j), image_size=hw).items()}

            params = tf.map_fn(sample_one, indices, fn_output_signature=signature)
            x = op.apply(x, params)
            for spec in specs:
                if spec.kind == "continuous":
                    targets.append(tf.reshape(tf.cast(params[spec.key], tf.float32), [b, -1]))
        out = tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0), tf.uint8)
        return out, tf.concat(targets, axis=1)

    return run


def _image_batches(data, batch_size: int) -> tuple[Iterator[np.ndarray], int | None]:
    """uint8 (b, H, W, 3) batches of an array or a dataset (of images or of {"image": ...})."""
    if isinstance(data, np.ndarray):
        images = _check_images(data, "param_probe")
        return (images[i : i + batch_size] for i in range(0, len(images), batch_size)), len(images)
    import tensorflow as tf

    if not isinstance(data, tf.data.Dataset):
        raise TypeError(
            "param_probe: images must be a uint8 array (N, H, W, 3) or a tf.data.Dataset of images or of "
            f'{{"image": ...}}; received {type(data).__name__}.'
        )
    spec = data.element_spec
    if isinstance(spec, Mapping):
        if "image" not in spec:
            raise ValueError(f"param_probe: dataset elements need an 'image' key; they have {sorted(spec)}.")
        data = data.map(lambda e: e["image"])
        spec = data.element_spec
    if spec.dtype != tf.uint8 or spec.shape.rank not in (3, 4):
        raise ValueError(f"param_probe: dataset images must be uint8 (H, W, 3) or (B, H, W, 3); received {spec}.")
    n = None
    if spec.shape.rank == 3:
        n = int(data.cardinality()) if int(data.cardinality()) >= 0 else None
        data = data.batch(batch_size)
    return data.as_numpy_iterator(), n


def extract_param_features(
    encode: Encode,
    images,
    families,
    *,
    parts: Sequence[str] | None = None,
    transforms_per_image: int = 1,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool | None = None,
    original: Mapping | None = None,
) -> dict:
    """Features of originals and transformed copies, and the parameters drawn.

    `original`: the originals' features `{part: (N, C)}` when already extracted (they are not
    encoded again).

    Returns:
        `{"original": {part: (N, C)}, "families": {family: {"features": {part: (R*N, C)},
        "targets": (R*N, P), "names": [P names], "index": (R*N,) image index}}}`, R =
        `transforms_per_image` (rows of repeat r are `r*N .. (r+1)*N - 1`).
    """
    import tensorflow as tf

    from keras_eqssl.augment.seeds import fold

    named = not isinstance(families, Mapping)
    families = _resolve_families(families)
    runs = {name: _family_transformer(name) if named else _transformer(ops) for name, ops in families.items()}
    batches, n = _image_batches(images, batch_size)
    given = original
    original = []
    per_family = {name: [[] for _ in range(transforms_per_image)] for name in families}
    count = 0
    steps = (-(-n // batch_size) if n else 0) * (1 + len(families) * transforms_per_image)
    show = progress if progress is not None else steps >= 20
    with _progress(n, show, "param probe") as bar:
        for batch in batches:
            batch = _check_images(batch, "param_probe")
            if given is None:
                original.append(_encode_batch(encode, batch, parts, "param_probe"))
            for name in families:
                for r in range(transforms_per_image):
                    out, targets = runs[name](
                        tf.constant(batch), fold(seed, _name_key(name), r), tf.constant(count, tf.int32)
                    )
                    feats = _encode_batch(encode, out.numpy(), parts, "param_probe")
                    index = np.arange(count, count + len(batch))
                    per_family[name][r].append((feats, targets.numpy(), index))
            count += len(batch)
            bar.update(len(batch))
    if count < 2:
        raise ValueError(f"param_probe: needs at least 2 images; received {count}.")

    def cat(chunks):
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    if given is not None:
        original = [{k: np.asarray(given[k]) for k in (parts or given)}]
        if len(original[0][next(iter(original[0]))]) != count:
            raise ValueError(f"param_probe: `original` has features of {len(original[0][next(iter(original[0]))])} images; there are {count}.")  # fmt: skip
    result = {"original": cat(original), "families": {}}
    for name, ops in families.items():
        rows = [item for rep in per_family[name] for item in rep]
        result["families"][name] = {
            "features": cat([r[0] for r in rows]),
            "targets": np.concatenate([r[1] for r in rows]),
            "index": np.concatenate([r[2] for r in rows]),
            "names": np.array(target_names(ops)),
        }
    return result


def param_scores(
    feats: Mapping,
    groups,
    *,
    parts: Sequence[str] = PARTS,
    heads: Sequence[str] = ("linear",),
    repeats: int = 3,
    test_fraction: float = 0.25,
    seed: int = 0,
    mlp_options: Mapping | None = None,
    test_groups: Sequence | None = None,
) -> list[Score]:
    """The probe on features already extracted by `extract_param_features`.

    Args:
        feats: `extract_param_features`'s output.
        groups: (N,) group of each original image (its photo or object): test images never share
            a group with training images.
        parts, heads, repeats, test_fraction, seed, mlp_options: see `param_probe`.
        test_groups: a fixed held-out set instead of `test_fraction`: the heads fit once on the
            other groups, and each repeat scores a bootstrap sample of these groups
            (`repeats.bootstrap_groups`).

    Returns:
        `Score`s of probe "params", one target per family (components in `dim`).
    """
    from sklearn.model_selection import GroupShuffleSplit

    parts = check_choices("part", parts, PARTS)
    heads = check_heads(heads)
    repeats = check_repeats(repeats)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"param_probe: test_fraction must be in (0, 1); received {test_fraction}.")
    n = len(feats["original"][parts[0]])
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"param_probe: groups must be ({n},), one per image; received shape {groups.shape}.")
    if len(np.unique(groups)) < 3:
        raise ValueError(
            f"param_probe: needs at least 3 groups (photos or objects) to hold some out; received {len(np.unique(groups))}."
        )
    collector = Collector("params")
    if test_groups is not None:
        _fixed_split_scores(feats, groups, test_groups, parts, heads, repeats, seed, mlp_options, collector)
        return collector.scores()
    for r in range(repeats):
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=int(seed) * 1000 + r)
        _, test_images = next(splitter.split(np.zeros(n), groups=groups))
        is_test = np.zeros(n, bool)
        is_test[test_images] = True
        for name, names, part, fitted, x_test, y_test, _ in _fitted_heads(
            feats, groups, is_test, parts, heads, mlp_options, seed + r
        ):
            for head, model in fitted.items():
                collector.add_regression(name, part, head, y_test, predict_2d(model, x_test), names)
    return collector.scores()


def _fitted_heads(feats, groups, is_test, parts, heads, mlp_options, seed):
    """For each family and part: heads fit on `[f(I), f(g(I))]` of the images not `is_test`, and the
    held-out rows, as `(family, target names, part, fitted heads, x_test, y_test, test groups)`."""
    for name, fam in feats["families"].items():
        names = [str(x) for x in fam["names"]]
        test_rows = is_test[fam["index"]]
        y = fam["targets"]
        row_groups = groups[fam["index"]]
        for part in parts:
            x = np.concatenate([feats["original"][part][fam["index"]], fam["features"][part]], axis=1)
            fitted = fit_regressors(
                x[~test_rows], y[~test_rows], row_groups[~test_rows], heads, mlp_options=mlp_options, seed=seed
            )
            yield name, names, part, fitted, x[test_rows], y[test_rows], row_groups[test_rows]


def _fixed_split_scores(feats, groups, test_groups, parts, heads, repeats, seed, mlp_options, collector) -> None:
    """`param_scores` with a fixed held-out set of groups: heads fit once, repeats bootstrap the test groups."""
    is_test = np.isin(groups, np.asarray(test_groups))
    if is_test.all() or not is_test.any():
        raise ValueError(
            f"param_probe: test_groups {list(test_groups)} must hold out some groups and leave others to fit on; "
            f"the groups are {np.unique(groups).tolist()}."
        )
    for name, names, part, fitted, x_test, y_test, g_test in _fitted_heads(
        feats, groups, is_test, parts, heads, mlp_options, seed
    ):
        predicted = {head: predict_2d(model, x_test) for head, model in fitted.items()}
        for r in range(repeats):
            rows = bootstrap_groups(g_test, int(seed) * 1000 + r)
            for head, y_hat in predicted.items():
                collector.add_regression(name, part, head, y_test[rows], y_hat[rows], names)


def param_probe(
    encode: Encode,
    images,
    groups,
    *,
    families: Sequence[str] | Mapping = FAMILIES,
    parts: Sequence[str] = PARTS,
    heads: Sequence[str] = ("linear",),
    repeats: int = 3,
    test_fraction: float = 0.25,
    transforms_per_image: int = 1,
    batch_size: int = 256,
    seed: int = 0,
    mlp_options: Mapping | None = None,
    progress: bool | None = None,
) -> list[Score]:
    """Regresses augmentation parameters from `[f(I), f(g(I))]`; R² per family, head and part.

    Each of `repeats` repeats holds out `test_fraction` of the **groups** (photos, objects) with
    all their images and transformed copies, fits the heads on the rest and scores the held-out
    images; every figure is a mean ± std over repeats. Use at least ~2,700 images so that the
    heads train on 2,000 or more.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}`.
        images: uint8 `(N, H, W, 3)`, all of one size.
        groups: (N,) the photo or object each image comes from.
        families: names from `FAMILIES`, or `{name: [ops]}` for custom ones (None ops: the named
            family's).
        parts: encoder outputs to probe ("embedding", "invariant", "equivariant").
        heads: "linear" and/or "mlp" (the constant predictor is always scored).
        repeats: held-out draws.
        test_fraction: the share of groups held out per repeat.
        transforms_per_image: transformed copies per image and family.
        batch_size: images per `encode` call.
        seed: parameter draws, splits and MLP weights.
        mlp_options: `train_mlp` keyword arguments.
        progress: a tqdm bar (None: for long runs).

    Returns:
        A list of `Score`s (probe "params"; target = family; metric "r2"; parameters in `dim`).

    Raises:
        ValueError: an unknown family (the message lists the known ones), part or head; too few
            groups.

    Example:
    >>> from keras_eqssl.data import skimage_photos
    >>> crops = list(skimage_photos(64, 2700).as_numpy_iterator())                     # doctest: +SKIP
    >>> images = np.stack([c["image"] for c in crops]); photo = np.array([c["label"] for c in crops])  # doctest: +SKIP
    >>> scores = param_probe(encode, images, photo, families=["rotation"])               # doctest: +SKIP
    >>> one(scores, target="rotation", part="equivariant", head="linear", metric="r2").text()  # doctest: +SKIP
    '0.412 ± 0.031'
    """
    families = _resolve_families(families)
    parts = check_choices("part", parts, PARTS)
    if transforms_per_image < 1:
        raise ValueError(f"param_probe: transforms_per_image must be >= 1; received {transforms_per_image}.")
    feats = extract_param_features(
        encode,
        images,
        families,
        parts=parts,
        transforms_per_image=transforms_per_image,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    return param_scores(
        feats,
        groups,
        parts=parts,
        heads=heads,
        repeats=repeats,
        test_fraction=test_fraction,
        seed=seed,
        mlp_options=mlp_options,
    )
