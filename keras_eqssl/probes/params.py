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

One family at a time, and all combined ("all"). Parameters are drawn per image with stateless
seeds, a pure function of (`seed`, the family's name, the image's index, the repeat): a run is
reproducible, and the batch size and the other families asked for change nothing. Translation is in pixels of the input whatever its size (the paper's images are
224 px). Custom families: pass `families={"name": [op, ...]}` with any ops of
`keras_eqssl.augment` (their continuous parameters are regressed).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from keras_eqssl.probes.features import (
    PARTS,
    Encode,
    _array_key,
    _check_images,
    _encode_batch,
    _flatten,
    _load,
    _progress,
    _save,
    _unflatten,
    cache_path,
    check_choices,
)
from keras_eqssl.probes.heads import resolve_heads, train_head
from keras_eqssl.probes.r2 import r2_mean, r2_per_dim

FAMILIES = ("rotation", "color", "blur", "translation", "all")
_ALL_ORDER = ("color", "blur", "rotation", "translation")


def family_ops(name: str) -> list:
    """The ops of a family of the paper's protocol (see the module doc); ValueError for others.

    Example:
    >>> [type(op).__name__ for op in family_ops("all")]
    ['ColorJitter', 'GaussianBlur', 'Rotation', 'Translation']
    """
    from keras_eqssl.augment import ColorJitter, GaussianBlur, Rotation, Translation

    makers = {
        "rotation": lambda: Rotation(45.0),
        "color": lambda: ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        "blur": lambda: GaussianBlur(sigma=(0.1, 2.0)),
        "translation": lambda: Translation(10.0),
    }
    if name == "all":
        return [makers[k]() for k in _ALL_ORDER]
    if name not in makers:
        raise ValueError(f"Unknown parameter family {name!r}; known: {list(FAMILIES)}.")
    return [makers[name]()]


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
    return {name: family_ops(name) for name in check_choices("parameter family", families, FAMILIES)}


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
) -> dict:
    """Features of originals and transformed copies, and the parameters drawn.

    Returns:
        `{"original": {part: (N, C)}, "families": {family: {"features": {part: (R*N, C)},
        "targets": (R*N, P), "names": [P names], "index": (R*N,) image index}}}`, R =
        `transforms_per_image` (rows of repeat r are `r*N .. (r+1)*N - 1`).
    """
    import tensorflow as tf

    from keras_eqssl.augment.seeds import fold

    families = _resolve_families(families)
    runs = {name: _transformer(ops) for name, ops in families.items()}
    batches, n = _image_batches(images, batch_size)
    original: list = []
    per_family = {name: [[] for _ in range(transforms_per_image)] for name in families}
    count = 0
    steps = (-(-n // batch_size) if n else 0) * (1 + len(families) * transforms_per_image)
    show = progress if progress is not None else steps >= 20
    with _progress(n, show, "param probe") as bar:
        for batch in batches:
            batch = _check_images(batch, "param_probe")
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


def param_probe(
    encode: Encode,
    images,
    *,
    families: Sequence[str] | Mapping = FAMILIES,
    parts: Sequence[str] = ("embedding",),
    heads: Sequence[str] | Mapping = ("linear", "mlp"),
    head_options: Mapping | None = None,
    transforms_per_image: int = 1,
    test_fraction: float = 0.25,
    batch_size: int = 256,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    model_key: str | None = None,
    data_key: str | None = None,
    progress: bool | None = None,
) -> dict:
    """Regresses augmentation parameters from `[f(I), f(g(I))]`; R² per parameter, per head and part.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}`.
        images: uint8 `(N, H, W, 3)`, or a `tf.data.Dataset` of uint8 images or of dicts with an
            "image" (e.g. `keras_eqssl.data.skimage_photos(...)`); all of one size.
        families: names from `FAMILIES` ("rotation", "color", "blur", "translation", "all"), or
            `{name: [ops]}` for custom ones (None ops: the named family's).
        parts: encoder outputs to probe ("embedding", "invariant", "equivariant").
        heads: "linear" and/or "mlp", or `{name: train_head kwargs}`.
        head_options: `train_head` kwargs for every head.
        transforms_per_image: R transformed copies per image and family (more samples).
        test_fraction: the share of images (with all their copies) held out to score the heads.
        batch_size: images per `encode` call.
        seed: parameter draws, the split and (unless `head_options` sets one) the heads.
        cache: a directory to keep the features in (`.npz`; needs `model_key` or `encode.cache_key`,
            and `data_key` for a dataset).
        model_key, data_key: cache keys (see `extract`).
        progress: a tqdm bar (None: for long runs).

    Returns:
        A JSON-able dict:

            {"protocol": "augmentation-parameters", "num_images", "num_train", "num_test",
             "transforms_per_image", "seed", "parts", "heads",
             "families": {family: [parameter names]},
             "results": {part: {head: {family: {"r2": {name: R²}, "r2_mean": mean R²}}}}}

        `num_train` / `num_test` count (image, transform) pairs.

    Raises:
        ValueError: an unknown family (the message lists the known ones), part or head.

    Example:
    >>> from keras_eqssl.data import skimage_photos
    >>> out = param_probe(encode, skimage_photos(64, 1024), families=["rotation"])   # doctest: +SKIP
    >>> out["results"]["embedding"]["mlp"]["rotation"]["r2"]["rotation"]              # doctest: +SKIP
    0.87
    """
    families = _resolve_families(families)
    parts = check_choices("part", parts, PARTS)
    head_specs = resolve_heads(heads, {"seed": seed, **dict(head_options or {})})
    if transforms_per_image < 1:
        raise ValueError(f"param_probe: transforms_per_image must be >= 1; received {transforms_per_image}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"param_probe: test_fraction must be in (0, 1); received {test_fraction}.")

    feats = None
    path = key_blob = None
    if cache is not None:
        model_key = model_key if model_key is not None else getattr(encode, "cache_key", None)
        if model_key is None:
            raise ValueError("param_probe: cache= needs model_key= or an encoder with a cache_key.")
        if data_key is None:
            if not isinstance(images, np.ndarray):
                raise ValueError("param_probe: cache= with a dataset needs data_key=, a string describing the data.")
            data_key = _array_key(_check_images(images, "param_probe"))
        config = {
            "families": {k: [repr(op) for op in v] for k, v in families.items()},
            "R": transforms_per_image,
            "seed": seed,
        }
        data_desc = f"param-probe:{data_key}:{json.dumps(config, sort_keys=True)}"
        path = cache_path(cache, model_key, data_desc, parts)
        key_blob = json.dumps({"model": model_key, "data": data_desc, "parts": parts}, sort_keys=True)
        if path.exists():
            flat = _load(path, key_blob)
            if flat is not None:
                feats = _unflatten(flat)
    if feats is None:
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
        if path is not None:
            _save(path, _flatten(feats), key_blob)

    n = len(feats["original"][parts[0]])
    rng = np.random.default_rng([seed, 0x9A7A])
    is_test = np.zeros(n, bool)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    is_test[rng.permutation(n)[:n_test]] = True

    results: dict = {part: {h: {} for h in head_specs} for part in parts}
    for name, fam in feats["families"].items():
        names = [str(s) for s in fam["names"]]
        test_rows = is_test[fam["index"]]
        y = fam["targets"]
        for part in parts:
            x = np.concatenate([feats["original"][part][fam["index"]], fam["features"][part]], axis=1)
            for head_name, kwargs in head_specs.items():
                head = train_head(x[~test_rows], y[~test_rows], task="regression", **kwargs)
                pred = head.predict(x[test_rows])
                per_dim = r2_per_dim(y[test_rows], pred)
                results[part][head_name][name] = {
                    "r2": {k: float(v) for k, v in zip(names, per_dim)},
                    "r2_mean": r2_mean(y[test_rows], pred),
                }
    first = next(iter(feats["families"].values()))
    test_pairs = int(is_test[first["index"]].sum())
    return {
        "protocol": "augmentation-parameters",
        "num_images": int(n),
        "num_train": int(len(first["index"]) - test_pairs),
        "num_test": test_pairs,
        "transforms_per_image": int(transforms_per_image),
        "seed": int(seed),
        "parts": list(parts),
        "heads": list(head_specs),
        "families": {k: [str(s) for s in v["names"]] for k, v in feats["families"].items()},
        "results": results,
    }
