"""Frozen features: an encoder from a Keras model, and batched, cached extraction.

Every probe takes an `encode` callable:

    encode(images: np.ndarray uint8 (N, H, W, 3)) -> {"embedding": (N, C), "invariant": ..., ...}

so a probe runs on an exported SavedModel (`keras_eqssl.export.load_encoder(path)`, an
`Encoder`), on a Keras model in memory (`encoder_from_model`), or on any NumPy function (tests).

`extract` runs an encoder over an array of images or a `tf.data.Dataset` in batches, with a tqdm
progress bar for long runs, and can keep the features in an on-disk cache (`.npz` named by a hash
of the model and a description of the data) so that each set of features is computed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from keras_eqssl.export.encoder import encode_in_batches

CACHE_VERSION = 1
_SEP = "/"

Encode = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def check_choices(what: str, given, known) -> list[str]:
    """`given` as a list of names, each in `known`; else a ValueError that lists the known names."""
    if isinstance(given, str):
        given = [given]
    given = list(given)
    if not given:
        raise ValueError(f"Give at least one {what}; known: {sorted(known)}.")
    unknown = [g for g in given if g not in known]
    if unknown:
        raise ValueError(f"Unknown {what} {unknown}; known: {sorted(known)}.")
    return given


# --- encoders -----------------------------------------------------------------------------------
def encoder_from_model(model, batch_size: int = 256, cache_key: str | None = None) -> Encode:
    """An `encode` callable for a Keras model in memory (inference mode, batched).

    A model with `encoder_outputs(images, training=False)` (e.g. `PairModel`) gets the uint8
    images as they are (it normalises them itself). Any other model gets them as float32 in
    [0, 1]; a single-tensor output is returned as `{"embedding": ...}`. (An exported SavedModel
    is already an `encode` callable: `keras_eqssl.export.load_encoder(path)`.)

    Args:
        model: a `keras.Model` (or any callable taking `training=`).
        batch_size: images per call.
        cache_key: a string naming the weights, to let `extract` cache its features.

    Example:
    >>> encode = encoder_from_model(pair_model)  # doctest: +SKIP
    >>> sorted(encode(images))                    # doctest: +SKIP
    ['embedding', 'equivariant', 'invariant']
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"encoder_from_model: batch_size must be >= 1; received {batch_size}.")
    own = getattr(model, "encoder_outputs", None)

    @tf.function(reduce_retracing=True)
    def run(images):
        if own is not None:
            return own(images, training=False)
        return model(tf.cast(images, tf.float32) / 255.0, training=False)

    def run_batch(images: np.ndarray) -> Mapping:
        out = run(tf.constant(images))
        return out if isinstance(out, Mapping) else {"embedding": out}

    def encode(images: np.ndarray) -> dict[str, np.ndarray]:
        return encode_in_batches(run_batch, _check_images(images, "encoder_from_model"), batch_size)

    if cache_key is not None:
        encode.cache_key = str(cache_key)
    return encode


# --- extraction ---------------------------------------------------------------------------------
def _check_images(images, where: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{where}: expected uint8 images (N, H, W, 3); received {images.dtype} {images.shape}.")
    return images


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}{_SEP}"))
        return out
    return {prefix[: -len(_SEP)]: tree}


def _unflatten(flat: Mapping) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        *path, leaf = key.split(_SEP)
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _is_image_spec(spec, batched: bool) -> bool:
    import tensorflow as tf

    rank = 4 if batched else 3
    return spec.dtype == tf.uint8 and spec.shape.rank == rank and spec.shape[-1] == 3


def _encode_batch(encode: Encode, images: np.ndarray, parts, where: str) -> dict[str, np.ndarray]:
    out = encode(images)
    if not isinstance(out, Mapping):
        raise TypeError(f"{where}: encode must return a dict of arrays; it returned {type(out).__name__}.")
    keep = list(out) if parts is None else list(parts)
    missing = [p for p in keep if p not in out]
    if missing:
        raise ValueError(f"{where}: the encoder returns {sorted(out)}, not {missing}.")
    result = {}
    for k in keep:
        v = np.asarray(out[k], dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != len(images):
            raise ValueError(
                f"{where}: encode(images (N={len(images)}, ...))[{k!r}] must be (N, C); received shape {v.shape}."
            )
        result[k] = v
    return result


def _progress(total, enabled, desc, unit="img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def _array_key(images: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()[:24]
    return f"array:{images.dtype}{list(images.shape)}:{digest}"


def cache_path(cache: str | os.PathLike, model_key: str, data_key: str, parts=None) -> pathlib.Path:
    """The `.npz` file `extract` uses for (model, data, parts) inside the cache directory."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "model": model_key, "data": data_key, "parts": None if parts is None else list(parts)},
        sort_keys=True,
    )
    return pathlib.Path(cache) / f"features-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npz"


def _save(path: pathlib.Path, flat: dict, key_blob: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __key__=np.array(key_blob), **flat)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load(path: pathlib.Path, key_blob: str) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["__key__"]) != key_blob:
                return None
            return {k: z[k] for k in z.files if k != "__key__"}
    except (OSError, ValueError, KeyError):
        return None  # a truncated or foreign file: extract again and overwrite it


def _as_saveable(value) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype == object:  # tf.string leaves
        value = value.astype(bytes)
    return value


def extract(
    encode: Encode,
    data,
    batch_size: int = 256,
    *,
    parts: Sequence[str] | None = None,
    cache: str | os.PathLike | None = None,
    model_key: str | None = None,
    data_key: str | None = None,
    progress: bool | None = None,
    desc: str = "features",
) -> dict:
    """Encodes images in batches; optionally caches the result on disk.

    Args:
        encode: `encode(uint8 (n, H, W, 3)) -> {name: (n, C)}` (see the module doc).
        data: either
            - an array `(N, H, W, 3)` uint8: returns `{part: (N, C)}`;
            - a `tf.data.Dataset` of unbatched or batched elements: an image tensor, or a nested
              dict whose uint8 `(H, W, 3)` leaves (or `(B, H, W, 3)` when batched) are images, e.g.
              `skimage_photos()` (`{"image", "label"}`) or `threedie_pairs()`. Each image leaf is
              replaced by its `{part: (N, C)}` and every other leaf is stacked, so
              `{"image": ..., "label": ...}` gives `{"image": {part: (N, C)}, "label": (N,)}`
              and a pair dataset gives `{"views": {"v1": {part: ...}, "v2": {...}}, "rel_rotation": ...}`.
        batch_size: images per `encode` call (batches an unbatched dataset).
        parts: the encoder outputs to keep (default: all it returns).
        cache: a directory; when given, the result is stored as `features-<hash>.npz`, keyed by
            the model, the data and `parts`, and read back on the next call instead of encoding.
        model_key: a string naming the model weights; default `encode.cache_key` (set by
            `load_encoder`: the SavedModel's path and file stamp).
        data_key: a string describing the data (source, split, size, seed, ...); default for an
            array: a hash of its bytes. A dataset needs one to be cached.
        progress: show a tqdm bar; None shows it for 20 batches or more.
        desc: the progress bar's label.

    Returns:
        A dict of float32 `(N, C)` feature arrays (nested as described for datasets).

    Example:
    >>> feats = extract(encode, images, batch_size=128)                        # doctest: +SKIP
    >>> feats["embedding"].shape                                               # doctest: +SKIP
    (1000, 512)
    >>> ds = skimage_photos(image_size=64, num_images=512)                     # doctest: +SKIP
    >>> out = extract(encode, ds, cache="/tmp/feats", data_key="photos64-512")  # doctest: +SKIP
    >>> out["image"]["invariant"].shape, out["label"].shape                    # doctest: +SKIP
    ((512, 256), (512,))
    """
    if batch_size < 1:
        raise ValueError(f"extract: batch_size must be >= 1; received {batch_size}.")
    if parts is not None:
        parts = tuple(parts)
    is_array = isinstance(data, np.ndarray)
    if is_array:
        data = _check_images(data, "extract")

    path = key_blob = None
    if cache is not None:
        model_key = model_key if model_key is not None else getattr(encode, "cache_key", None)
        if model_key is None:
            raise ValueError(
                "extract: cache= needs a model_key (a string naming the weights), or an encoder with a "
                "cache_key (load_encoder's Encoder has one; encoder_from_model(..., cache_key=...))."
            )
        if data_key is None:
            if not is_array:
                raise ValueError(
                    "extract: cache= with a dataset needs data_key=, a string describing the data "
                    "(source, split, image size, seed, ...)."
                )
            data_key = _array_key(data)
        path = cache_path(cache, model_key, data_key, parts)
        key_blob = json.dumps({"model": model_key, "data": data_key, "parts": parts}, sort_keys=True)
        if path.exists():
            flat = _load(path, key_blob)
            if flat is not None:
                return _unflatten(flat)

    if is_array:
        result = _extract_array(encode, data, batch_size, parts, progress, desc)
    else:
        result = _extract_dataset(encode, data, batch_size, parts, progress, desc)

    if path is not None:
        _save(path, _flatten(result), key_blob)
    return result


def _extract_array(encode, images, batch_size, parts, progress, desc) -> dict:
    n = len(images)
    if not n:
        raise ValueError("extract: no images (N = 0).")
    show = progress if progress is not None else n >= 20 * batch_size
    with _progress(n, show, desc) as bar:

        def step(batch: np.ndarray) -> dict[str, np.ndarray]:
            bar.update(len(batch))
            return _encode_batch(encode, batch, parts, "extract")

        return encode_in_batches(step, images, batch_size)


def _extract_dataset(encode, dataset, batch_size, parts, progress, desc) -> dict:
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"extract: data must be a uint8 array (N, H, W, 3) or a tf.data.Dataset; received {type(dataset).__name__}."
        )
    spec = dataset.element_spec
    if isinstance(spec, Mapping):
        flat_specs = _flatten(spec)
    elif isinstance(spec, tf.TensorSpec):
        flat_specs = None
    else:
        raise TypeError(
            "extract: dataset elements must be an image tensor or a (nested) dict with uint8 image leaves; "
            f"received element spec {spec}."
        )
    specs = flat_specs if flat_specs is not None else {"": spec}
    batched = None
    for rank_batched in (False, True):
        if any(_is_image_spec(s, rank_batched) for s in specs.values()):
            batched = rank_batched
            break
    if batched is None:
        raise ValueError(
            f"extract: the dataset has no uint8 image leaf (H, W, 3) or (B, H, W, 3); its element spec is {spec}."
        )
    image_keys = [k for k, s in specs.items() if _is_image_spec(s, batched)]
    cardinality = int(dataset.cardinality())
    if not batched:
        dataset = dataset.batch(batch_size)
    # Unbatched: the bar counts elements (images per image key); batched: it counts batches.
    total = cardinality if cardinality >= 0 else None
    num_batches = None if total is None else (-(-total // batch_size) if not batched else total)
    show = progress if progress is not None else (num_batches or 0) >= 20

    features: dict[str, list] = {}
    others: dict[str, list] = {}
    with _progress(total, show, desc, unit="batch" if batched else "element") as bar:
        for element in dataset.as_numpy_iterator():
            flat = _flatten(element) if flat_specs is not None else {"": element}
            count = 0
            for key in image_keys:
                images = np.asarray(flat[key])
                where = f"extract ({key or 'images'})"
                out = encode_in_batches(lambda chunk: _encode_batch(encode, chunk, parts, where), images, batch_size)
                for part, value in out.items():
                    features.setdefault(f"{key}{_SEP}{part}" if key else part, []).append(value)
                count = len(images)
            for key, value in flat.items():
                if key not in image_keys:
                    others.setdefault(key, []).append(_as_saveable(value))
            bar.update(1 if batched else count)
    if not features:
        raise ValueError("extract: the dataset is empty.")
    flat_out = {k: np.concatenate(v, axis=0) for k, v in features.items()}
    flat_out.update({k: np.concatenate(v, axis=0) for k, v in others.items()})
    return _unflatten(flat_out)
