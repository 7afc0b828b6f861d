"""Loading an exported encoder: `load_encoder(path)` -> `Encoder`, with TensorFlow and NumPy only.

This module never imports Keras or the training code (only `keras_eqssl.errors`), so feature
extraction (probes, a serving client, a notebook) does not pay for, or depend on, them.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from keras_eqssl.errors import InputError  # plain Python: no TensorFlow, Keras or training code

SIGNATURE_KEY = "serving_default"  # float32 [0, 1] images (format 2); uint8 in format 1
UINT8_SIGNATURE_KEY = "serving_uint8"  # uint8 [0, 255] images, same outputs (format 2 only)
INPUT_KEY = "images"
OUTPUT_KEYS = ("embedding", "invariant", "equivariant")
METADATA_FILE = "keras_eqssl_export.json"
FORMAT = "keras_eqssl.encoder/2"
# What each input dtype means: the value range the signatures accept.
INPUT_RANGES = {"float32": (0.0, 1.0), "uint8": (0, 255)}

EXPECTED = (
    f"signature {SIGNATURE_KEY!r} taking {INPUT_KEY!r}: float32 (N, H, W, 3) in [0, 1] (format 2; uint8 in "
    f"format 1) and returning float32 (N, C) {', '.join(repr(k) for k in OUTPUT_KEYS)}"
)


def _spec_str(spec) -> str:
    shape = tuple(spec.shape) if spec.shape.rank is not None else "unknown rank"
    return f"{spec.dtype.name} {shape}"


def _input_dtype(signature) -> tf.DType:
    """The dtype of the signature's `images` input (checked by `_signature_problems`)."""
    return signature.structured_input_signature[1][INPUT_KEY].dtype


def _signature_problems(signature, dtypes=(tf.float32, tf.uint8)) -> list[str]:
    """What is wrong with `signature` for an encoder export (empty: nothing).

    `dtypes`: the accepted dtypes of `images` (serving_default: float32, or uint8 for format 1).
    """
    problems = []
    args, kwargs = signature.structured_input_signature
    inputs = dict(kwargs)
    if args or set(inputs) != {INPUT_KEY}:
        found = ", ".join(f"{k}: {_spec_str(s)}" for k, s in inputs.items()) or "none"
        problems.append(f"inputs must be exactly {{{INPUT_KEY!r}}}; found {found}")
    else:
        spec = inputs[INPUT_KEY]
        if spec.dtype not in dtypes or spec.shape.rank != 4 or spec.shape[-1] != 3:
            names = " or ".join(d.name for d in dtypes)
            problems.append(f"input {INPUT_KEY!r} must be {names} of rank 4 with 3 channels; found {_spec_str(spec)}")
    outputs = signature.structured_outputs
    if not isinstance(outputs, dict):
        problems.append(f"outputs must be a dict with keys {list(OUTPUT_KEYS)}; found {type(outputs).__name__}")
        return problems
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        found = ", ".join(f"{k}: {_spec_str(s)}" for k, s in outputs.items()) or "none"
        problems.append(f"outputs lack {missing}; found {found}")
    for key in OUTPUT_KEYS:
        spec = outputs.get(key)
        if spec is not None and (spec.dtype != tf.float32 or spec.shape.rank != 2):
            problems.append(f"output {key!r} must be float32 of rank 2 (N, C); found {_spec_str(spec)}")
    return problems


def _read_metadata(path: str, loaded) -> dict:
    """The metadata stored in the SavedModel (`metadata()`), else the JSON file next to it, else {}."""
    if hasattr(loaded, "metadata") and callable(loaded.metadata):
        try:
            return json.loads(loaded.metadata().numpy().decode("utf-8"))
        except (TypeError, ValueError, tf.errors.OpError):
            pass
    file = os.path.join(path, METADATA_FILE)
    if tf.io.gfile.exists(file):
        with tf.io.gfile.GFile(file) as f:
            return json.load(f)
    return {}


class ImagesError(InputError, ValueError):
    """Images an encoder cannot take as given: the message names the dtype, shape or range and the fix."""


# What each kind of input is, and how to make it from what a caller may hold instead.
KINDS = {"uint8": "uint8 images in [0, 255]", "float": "float images in [0, 1]"}


def _value_range(images: np.ndarray) -> str:
    """` (min a, max b)` of a non-empty numeric array (NaN ignored), else ``."""
    if not images.size or not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
        return ""
    values = images.astype(np.float64) if images.dtype == np.bool_ else images
    if np.issubdtype(values.dtype, np.floating) and np.isnan(values).all():
        return " (all NaN)"
    return f" (min {np.nanmin(values):g}, max {np.nanmax(values):g})"


def _dtype_advice(images: np.ndarray, kinds: tuple[str, ...]) -> str:
    """What to do with `images` of a dtype outside `kinds`."""
    if np.issubdtype(images.dtype, np.floating):  # only kinds == ("uint8",) refuses floats
        return (
            "Floats in [0, 1]: multiply by 255 and cast to uint8 (np.round(images * 255).astype(np.uint8)), "
            f"or call {SIGNATURE_KEY} with them (TensorFlow would cast them to uint8 as they are: 0.7 -> 0, black)."
        )
    if images.dtype == np.uint8:  # only kinds == ("float",) refuses uint8
        return f"uint8 pixels: divide by 255 (images / np.float32(255)), or call {UINT8_SIGNATURE_KEY} with them."
    if np.issubdtype(images.dtype, np.integer):
        if not images.size or (images.min() >= 0 and images.max() <= 255):
            return "Pixels 0..255 in another integer type: images.astype(np.uint8)."
        return (
            "Values outside 0..255 are not 8-bit pixels (TensorFlow would wrap them modulo 256): scale them "
            "to 0..255, then images.astype(np.uint8)."
        )
    return "Pass uint8 pixels, or floats in [0, 1]."


def _shape_advice(shape: tuple) -> str:
    if len(shape) == 3 and shape[-1] == 3:
        return "; one image (H, W, 3): add a batch axis: images[None]"
    if len(shape) == 4 and shape[-1] in (1, 4):
        return f"; {shape[-1]} channels: pass RGB (grayscale: np.repeat(images, 3, -1); RGBA: images[..., :3])"
    return ""


def _check_pixels(images, where: str, kinds: tuple[str, ...] = ("uint8", "float")) -> np.ndarray:
    """`images` as an array `(N, H, W, 3)` of one of `kinds` (uint8, floats in [0, 1]); else an `ImagesError`.

    The message names the dtype (with the min and max), the shape or the range received and says
    what to do; it never prints the values.
    """
    images = np.asarray(images)
    is_uint8, is_float = images.dtype == np.uint8, np.issubdtype(images.dtype, np.floating)
    if not (is_uint8 and "uint8" in kinds or is_float and "float" in kinds):
        raise ImagesError(
            f"{where} takes {' or '.join(KINDS[k] for k in kinds)}; received dtype {images.dtype}"
            f"{_value_range(images)}. {_dtype_advice(images, kinds)}"
        )
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3], default=0) < 1:
        raise ImagesError(
            f"{where} takes images (N, H, W, 3) with H, W >= 1; received shape {images.shape}"
            f"{_shape_advice(images.shape)}"
        )
    if is_float and images.size:
        low, high = images.min(), images.max()  # NaN if any value is NaN
        if not (low >= 0.0 and high <= 1.0):
            nans = int(np.isnan(images).sum())
            low, high = (np.nanmin(images), np.nanmax(images)) if nans < images.size else (np.nan, np.nan)
            fix = "pass them as np.uint8" if "uint8" in kinds else f"call {UINT8_SIGNATURE_KEY} with them as np.uint8"
            raise ImagesError(
                f"{where} takes float images in [0, 1]; received min {low:g}, max {high:g}"
                f"{f' and {nans} NaN values' if nans else ''}. "
                f"uint8 pixels: {fix}, or divide by 255."
            )
    return images


def encode_in_batches(encode_batch, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """`encode_batch` run on `images` `batch_size` at a time, its outputs concatenated over N.

    The one batching loop of the encoders: `Encoder.__call__`, `keras_eqssl.probes.encoder_from_model`
    and `keras_eqssl.probes.extract` run through it.

    Args:
        encode_batch: images `(n, H, W, 3)` -> `{name: (n, C)}` (tensors or arrays).
        images: an array `(N, H, W, 3)`.
        batch_size: images per call of `encode_batch` (>= 1).

    Returns:
        `{name: float32 (N, C)}`, in the order `encode_batch` returns them; `{}` for N = 0.

    Example:
    >>> out = encode_in_batches(lambda x: {"mean": x.mean(axis=(1, 2))}, np.ones((5, 2, 2, 3)), batch_size=2)
    >>> out["mean"].shape, out["mean"].dtype
    ((5, 3), dtype('float32'))
    """
    chunks = []
    for start in range(0, len(images), batch_size):
        out = encode_batch(images[start : start + batch_size])
        chunks.append({k: np.asarray(v, dtype=np.float32) for k, v in out.items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}


class CheckedSignature:
    """A signature of the SavedModel that checks its `images` before TensorFlow converts them.

    TensorFlow converts a NumPy array or a list to the signature's dtype without a word (to
    uint8: 0.7 -> 0, 300 -> 44); this wrapper refuses what would be converted wrong
    (`ImagesError`). `signature(images=...)` returns what the signature returns (`tf.Tensor`s);
    every other attribute (`structured_input_signature`, `structured_outputs`, ...) is the
    concrete function's.
    """

    def __init__(self, name: str, function, path: str):
        self.name = name
        self.function = function
        self._where = f"{name} of {path}"
        self._kinds = ("uint8",) if _input_dtype(function) == tf.uint8 else ("float",)

    def __getattr__(self, attr: str):
        return getattr(self.function, attr)

    def __call__(self, **inputs):
        if INPUT_KEY in inputs:
            inputs[INPUT_KEY] = self._checked(inputs[INPUT_KEY])
        return self.function(**inputs)

    def _checked(self, images):
        if not isinstance(images, (tf.Tensor, tf.Variable)):
            return _check_pixels(images, self._where, self._kinds)
        dtype, shape = images.dtype, tuple(images.shape)
        expected = _input_dtype(self.function)
        if dtype != expected:
            raise ImagesError(
                f"{self._where} takes {KINDS[self._kinds[0]]} ({expected.name}); received a {dtype.name} tensor. "
                + _dtype_advice(np.zeros(0, dtype.as_numpy_dtype), self._kinds)
            )
        if len(shape) != 4 or shape[-1] not in (3, None):
            raise ImagesError(
                f"{self._where} takes images (N, H, W, 3); received a tensor of shape {shape}{_shape_advice(shape)}"
            )
        return images


def _cache_key(path: str, signature: str) -> str:
    """`savedmodel:<absolute path>@<saved_model.pb mtime_ns>:<size>:<signature>` ("?" without a local file)."""
    pb = os.path.join(path, "saved_model.pb")
    stamp = f"{os.stat(pb).st_mtime_ns}:{os.stat(pb).st_size}" if os.path.isfile(pb) else "?"
    return f"savedmodel:{os.path.abspath(path)}@{stamp}:{signature}"


def _checked_batch_size(batch_size) -> int:
    if int(batch_size) < 1:
        raise ValueError(f"Encoder: batch_size must be >= 1; received {batch_size}")
    return int(batch_size)


class Encoder:
    """An exported encoder: images in, `{"embedding", "invariant", "equivariant"}` float32 out.

    Made by `load_encoder(path)`; wraps the SavedModel's signatures, which do all the
    preprocessing themselves (scale to [0, 1], resize to the training size, mean/std):
    `serving_default` takes float32 images in [0, 1], `serving_uint8` uint8 images in [0, 255].
    `encoder(images)` takes either and picks the signature by dtype. (A format-1 export has only
    a uint8 `serving_default`; floats are then rounded to uint8 here.) It is also the probes'
    `encode` callable (`keras_eqssl.probes`): `encoder(images)` runs `batch_size` images at a
    time, and `cache_key` names the weights for their feature cache.

    Attributes:
        path: the SavedModel directory.
        metadata: what `export_encoder` recorded (`format`, `image_size`, `split`, `feature_dim`,
            `mean`, `std`, `resize`, `model`, versions); `{}` for a SavedModel that has none.
        output_dims: output key -> C, the feature width of each output.
        signatures: signature name -> `CheckedSignature` (`signatures[name](images=...)` returns
            tensors): `serving_default`, and `serving_uint8` where the export has it. Unlike the
            raw `tf.saved_model.load(path).signatures`, they refuse a NumPy array TensorFlow would
            convert wrong (`serving_uint8` takes uint8 arrays only; `serving_default` floats in
            [0, 1]) and a shape other than `(N, H, W, 3)`, with an `ImagesError`.
        signature: `signatures["serving_default"]`.
        batch_size: images per call of a signature when `__call__` is given none.
        cache_key: names the weights for a feature cache: the absolute path, the modification
            time and size of `saved_model.pb` (a re-export at the same path gets a new key) and
            the signature uint8 images run through.

    Example:

    ```python
    import numpy as np
    from keras_eqssl.export import load_encoder

    encoder = load_encoder("/tmp/encoder")  # written by the export_encoder example
    images = np.zeros((10, 96, 96, 3), np.uint8)  # any size: resized to metadata["image_size"]
    features = encoder(images, batch_size=4)  # uint8: serving_uint8
    features["invariant"].shape  # (10, d_inv)
    encoder(images / 255.0)["invariant"].shape  # floats in [0, 1]: serving_default; same features
    ```
    """

    def __init__(self, path: str, loaded, signatures: dict, metadata: dict, batch_size: int = 256):
        self.path = path
        self.metadata = metadata
        self.batch_size = _checked_batch_size(batch_size)
        self._functions = dict(signatures)  # the concrete functions, for `__call__`'s checked arrays
        self.signatures = {name: CheckedSignature(name, fn, path) for name, fn in signatures.items()}
        self.signature = self.signatures[SIGNATURE_KEY]
        self._loaded = loaded  # keeps the variables alive for the signatures
        outputs = self.signature.structured_outputs
        keys = [k for k in OUTPUT_KEYS if k in outputs] + sorted(k for k in outputs if k not in OUTPUT_KEYS)
        self.output_dims = {k: outputs[k].shape[-1] for k in keys}
        self.cache_key = _cache_key(path, UINT8_SIGNATURE_KEY if UINT8_SIGNATURE_KEY in signatures else SIGNATURE_KEY)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(H, W)` the encoder resizes to (from the metadata), or None if unrecorded."""
        size = self.metadata.get("image_size")
        return None if size is None else tuple(int(s) for s in size)

    def describe(self) -> str:
        """The signatures in a few lines (what `keras-eqssl-export` prints)."""
        size = self.image_size
        note = ""
        if size is not None:
            how = self.metadata.get("resize") or "no resize: must already be that size"
            note = f"   any batch and size; resized to {size[0]}x{size[1]} ({how}"
            note += ", antialias)" if self.metadata.get("resize") else ")"
        lines = []
        for name, fn in self.signatures.items():
            lines.append(f"{name}:")
            for key, spec in fn.structured_input_signature[1].items():
                low, high = INPUT_RANGES.get(spec.dtype.name, (None, None))
                where = f" in [{low:g}, {high:g}]" if low is not None else ""
                lines.append(f"  input  {key}: {_spec_str(spec)}{where}{note}")
            for key in self.output_dims:
                lines.append(f"  output {key}: {_spec_str(fn.structured_outputs[key])}")
        return "\n".join(lines)

    def _route(self, dtype: np.dtype):
        """(concrete function, chunk -> tensor) for images of `dtype` (uint8 or floating, already checked)."""
        default = self._functions[SIGNATURE_KEY]
        default_uint8 = _input_dtype(default) == tf.uint8  # a format-1 export
        if dtype == np.uint8:
            if UINT8_SIGNATURE_KEY in self._functions:
                return self._functions[UINT8_SIGNATURE_KEY], tf.constant
            if default_uint8:
                return default, tf.constant
            return default, lambda x: tf.constant(x.astype(np.float32) / 255.0)
        if default_uint8:
            return default, lambda x: tf.constant(np.round(x.astype(np.float32) * 255.0).astype(np.uint8))
        return default, lambda x: tf.constant(x, tf.float32)

    def __call__(self, images, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Features of `images` `(N, H, W, 3)` (any H, W), run `batch_size` at a time.

        Args:
            images: uint8 in [0, 255] (run by `serving_uint8`), or floats in [0, 1] (float16/32/64,
                run by `serving_default` as float32).
            batch_size: images per call of the signature (None: `self.batch_size`).

        Returns:
            A dict of float32 arrays `(N, C)`, one per output of the signature; `(0, C)` for N = 0.

        Raises:
            ImagesError (a ValueError): another dtype (int64, uint16, bool, ...; the message names
                it with the min and max), a shape that is not `(N, H, W, 3)` with H, W >= 1 (one
                image `(H, W, 3)`: add a batch axis, `images[None]`), or floats outside [0, 1] or NaN.
        """
        images = _check_pixels(images, f"Encoder ({self.path})")
        batch_size = self.batch_size if batch_size is None else _checked_batch_size(batch_size)
        if len(images) == 0:
            return {k: np.zeros((0, d), np.float32) for k, d in self.output_dims.items()}
        fn, to_tensor = self._route(images.dtype)
        out = encode_in_batches(lambda chunk: fn(**{INPUT_KEY: to_tensor(chunk)}), images, batch_size)
        return {k: out[k] for k in self.output_dims}

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={d}" for k, d in self.output_dims.items())
        return f"Encoder({self.path!r}, image_size={self.image_size}, {dims})"


def load_encoder(path: str | os.PathLike, batch_size: int = 256) -> Encoder:
    """Loads an encoder SavedModel written by `export_encoder` (or any with the same signatures).

    Checks the signatures: `serving_default` takes `images` float32 `(N, H, W, 3)` (format 2) or
    uint8 (format 1); `serving_uint8`, where present, takes uint8; both return `embedding`,
    `invariant`, `equivariant` float32 `(N, C)`.

    Args:
        path: the SavedModel directory (local, or any path `tf.io.gfile` reads, e.g. `gs://`).
        batch_size: images per call of a signature when `encoder(images)` is given none.

    Returns:
        An `Encoder`: call it on uint8 or [0, 1] float images; `.metadata` holds what the export recorded.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a SavedModel, or its signatures are not an encoder's (the
            message says what was expected and what was found).

    Example:

    ```python
    from keras_eqssl.export import load_encoder

    encoder = load_encoder("/tmp/encoder")  # written by the export_encoder example
    print(encoder.describe())
    encoder.metadata["image_size"], encoder.metadata["split"]
    ```
    """
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"load_encoder: {path} does not exist")
    if not tf.io.gfile.isdir(path) or not tf.saved_model.contains_saved_model(path):
        hint = ""
        if path.endswith(".keras"):
            hint = " It is a Keras model file: export it first (keras-eqssl-export --checkpoint=... --out=DIR)."
        raise ValueError(
            f"load_encoder: {path} is not a SavedModel directory (no saved_model.pb in it); "
            f"expected the directory export_encoder wrote.{hint}"
        )
    loaded = tf.saved_model.load(path)
    found = dict(loaded.signatures)
    if SIGNATURE_KEY not in found:
        raise ValueError(
            f"load_encoder: {path} has no {SIGNATURE_KEY!r} signature (it has {sorted(found) or 'none'}); "
            f"expected {EXPECTED}."
        )
    signatures = {SIGNATURE_KEY: found[SIGNATURE_KEY]}
    problems = _signature_problems(found[SIGNATURE_KEY])
    if problems:
        raise ValueError(
            f"load_encoder: {path} is not an encoder export: its {SIGNATURE_KEY!r} signature "
            f"{'; '.join(problems)}. Expected {EXPECTED}."
        )
    if UINT8_SIGNATURE_KEY in found:
        signatures[UINT8_SIGNATURE_KEY] = found[UINT8_SIGNATURE_KEY]
        problems = _signature_problems(found[UINT8_SIGNATURE_KEY], dtypes=(tf.uint8,))
        if problems:
            raise ValueError(
                f"load_encoder: {path} is not an encoder export: its {UINT8_SIGNATURE_KEY!r} signature "
                f"{'; '.join(problems)}. Expected uint8 (N, H, W, 3) images in [0, 255] and the outputs of "
                f"{SIGNATURE_KEY!r}."
            )
    return Encoder(path, loaded, signatures, _read_metadata(path, loaded), batch_size=batch_size)
