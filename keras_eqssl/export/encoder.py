"""Loading an exported encoder: `load_encoder(path)` -> `Encoder`, with TensorFlow and NumPy only.

This module never imports Keras or the rest of keras_eqssl, so feature extraction (probes, a
serving client, a notebook) does not pay for, or depend on, the training code.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

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


def _check_pixels(images, where: str) -> np.ndarray:
    """`images` as an array (N, H, W, 3) of uint8, or of floats in [0, 1]; else a ValueError saying how to fix it."""
    images = np.asarray(images)
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"{where} takes uint8 images in [0, 255] or float images in [0, 1]; received dtype {images.dtype}. "
            "Pixels 0..255 in another integer type: images.astype(np.uint8)."
        )
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3], default=0) < 1:
        raise ValueError(f"{where} takes images (N, H, W, 3) with H, W >= 1; received shape {images.shape}")
    if images.dtype != np.uint8 and images.size:
        low, high = images.min(), images.max()  # NaN if any value is NaN
        if not (low >= 0.0 and high <= 1.0):
            nans = int(np.isnan(images).sum())
            low, high = (np.nanmin(images), np.nanmax(images)) if nans < images.size else (np.nan, np.nan)
            raise ValueError(
                f"{where} takes float images in [0, 1]; received min {low:g}, max {high:g}"
                f"{f' and {nans} NaN values' if nans else ''}. "
                "uint8 pixels: pass them as np.uint8, or divide by 255."
            )
    return images


class Encoder:
    """An exported encoder: images in, `{"embedding", "invariant", "equivariant"}` float32 out.

    Made by `load_encoder(path)`; wraps the SavedModel's signatures, which do all the
    preprocessing themselves (scale to [0, 1], resize to the training size, mean/std):
    `serving_default` takes float32 images in [0, 1], `serving_uint8` uint8 images in [0, 255].
    `encoder(images)` takes either and picks the signature by dtype. (A format-1 export has only
    a uint8 `serving_default`; floats are then rounded to uint8 here.)

    Attributes:
        path: the SavedModel directory.
        metadata: what `export_encoder` recorded (`format`, `image_size`, `split`, `feature_dim`,
            `mean`, `std`, `resize`, `model`, versions); `{}` for a SavedModel that has none.
        output_dims: output key -> C, the feature width of each output.
        signatures: signature name -> concrete function (`signatures[name](images=...)`):
            `serving_default`, and `serving_uint8` where the export has it.
        signature: `signatures["serving_default"]`.

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

    def __init__(self, path: str, loaded, signatures: dict, metadata: dict):
        self.path = path
        self.metadata = metadata
        self.signatures = dict(signatures)
        self.signature = self.signatures[SIGNATURE_KEY]
        self._loaded = loaded  # keeps the variables alive for the signatures
        outputs = self.signature.structured_outputs
        keys = [k for k in OUTPUT_KEYS if k in outputs] + sorted(k for k in outputs if k not in OUTPUT_KEYS)
        self.output_dims = {k: outputs[k].shape[-1] for k in keys}

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
        """(signature, chunk -> tensor) for images of `dtype` (uint8 or floating, already checked)."""
        default_uint8 = _input_dtype(self.signature) == tf.uint8  # a format-1 export
        if dtype == np.uint8:
            if UINT8_SIGNATURE_KEY in self.signatures:
                return self.signatures[UINT8_SIGNATURE_KEY], tf.constant
            if default_uint8:
                return self.signature, tf.constant
            return self.signature, lambda x: tf.constant(x.astype(np.float32) / 255.0)
        if default_uint8:
            return self.signature, lambda x: tf.constant(np.round(x.astype(np.float32) * 255.0).astype(np.uint8))
        return self.signature, lambda x: tf.constant(x, tf.float32)

    def __call__(self, images, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Features of `images` `(N, H, W, 3)` (any H, W), run `batch_size` at a time.

        Args:
            images: uint8 in [0, 255] (run by `serving_uint8`), or floats in [0, 1] (float16/32/64,
                run by `serving_default` as float32).
            batch_size: images per call of the signature.

        Returns:
            A dict of float32 arrays `(N, C)`, one per output of the signature; `(0, C)` for N = 0.

        Raises:
            ValueError: another dtype (int64, bool, ...), a shape that is not `(N, H, W, 3)` with
                H, W >= 1, or floats outside [0, 1] or NaN (the message names the min and max).
        """
        images = _check_pixels(images, f"Encoder ({self.path})")
        if int(batch_size) < 1:
            raise ValueError(f"Encoder: batch_size must be >= 1; received {batch_size}")
        batch_size = int(batch_size)
        if len(images) == 0:
            return {k: np.zeros((0, d), np.float32) for k, d in self.output_dims.items()}
        fn, to_tensor = self._route(images.dtype)
        chunks = []
        for start in range(0, len(images), batch_size):
            out = fn(**{INPUT_KEY: to_tensor(images[start : start + batch_size])})
            chunks.append({k: v.numpy() for k, v in out.items()})
        return {k: np.concatenate([c[k] for c in chunks]) for k in self.output_dims}

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={d}" for k, d in self.output_dims.items())
        return f"Encoder({self.path!r}, image_size={self.image_size}, {dims})"


def load_encoder(path: str | os.PathLike) -> Encoder:
    """Loads an encoder SavedModel written by `export_encoder` (or any with the same signatures).

    Checks the signatures: `serving_default` takes `images` float32 `(N, H, W, 3)` (format 2) or
    uint8 (format 1); `serving_uint8`, where present, takes uint8; both return `embedding`,
    `invariant`, `equivariant` float32 `(N, C)`.

    Args:
        path: the SavedModel directory (local, or any path `tf.io.gfile` reads, e.g. `gs://`).

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
    return Encoder(path, loaded, signatures, _read_metadata(path, loaded))
