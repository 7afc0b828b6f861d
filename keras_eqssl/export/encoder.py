"""Loading an exported encoder: `load_encoder(path)` -> `Encoder`, with TensorFlow and NumPy only.

This module never imports Keras or the rest of keras_eqssl, so feature extraction (probes, a
serving client, a notebook) does not pay for, or depend on, the training code.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

SIGNATURE_KEY = "serving_default"
INPUT_KEY = "images"
OUTPUT_KEYS = ("embedding", "invariant", "equivariant")
METADATA_FILE = "keras_eqssl_export.json"
FORMAT = "keras_eqssl.encoder/1"

EXPECTED = (
    f"signature {SIGNATURE_KEY!r} taking {INPUT_KEY!r}: uint8 (N, H, W, 3) and returning "
    f"float32 (N, C) {', '.join(repr(k) for k in OUTPUT_KEYS)}"
)


def _spec_str(spec) -> str:
    shape = tuple(spec.shape) if spec.shape.rank is not None else "unknown rank"
    return f"{spec.dtype.name} {shape}"


def _signature_problems(signature) -> list[str]:
    """What is wrong with `signature` for an encoder export (empty: nothing)."""
    problems = []
    args, kwargs = signature.structured_input_signature
    inputs = dict(kwargs)
    if args or set(inputs) != {INPUT_KEY}:
        found = ", ".join(f"{k}: {_spec_str(s)}" for k, s in inputs.items()) or "none"
        problems.append(f"inputs must be exactly {{{INPUT_KEY!r}}}; found {found}")
    else:
        spec = inputs[INPUT_KEY]
        if spec.dtype != tf.uint8 or spec.shape.rank != 4 or spec.shape[-1] != 3:
            problems.append(f"input {INPUT_KEY!r} must be uint8 of rank 4 with 3 channels; found {_spec_str(spec)}")
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


class Encoder:
    """An exported encoder: raw uint8 images in, `{"embedding", "invariant", "equivariant"}` out.

    Made by `load_encoder(path)`; wraps the SavedModel's `serving_default` signature, which does
    all the preprocessing itself (scale to [0, 1], resize to the training size, mean/std).

    Attributes:
        path: the SavedModel directory.
        metadata: what `export_encoder` recorded (`image_size`, `split`, `feature_dim`, `mean`,
            `std`, `resize`, `model`, versions); `{}` for a SavedModel that has none.
        output_dims: output key -> C, the feature width of each output.
        signature: the concrete `serving_default` function (`signature(images=...)`).

    Example:

    ```python
    import numpy as np
    from keras_eqssl.export import load_encoder

    encoder = load_encoder("/tmp/encoder")  # written by the export_encoder example
    images = np.zeros((10, 96, 96, 3), np.uint8)  # any size: resized to metadata["image_size"]
    features = encoder(images, batch_size=4)
    features["invariant"].shape  # (10, d_inv)
    ```
    """

    def __init__(self, path: str, loaded, signature, metadata: dict):
        self.path = path
        self.metadata = metadata
        self.signature = signature
        self._loaded = loaded  # keeps the variables alive for `signature`
        outputs = signature.structured_outputs
        keys = [k for k in OUTPUT_KEYS if k in outputs] + sorted(k for k in outputs if k not in OUTPUT_KEYS)
        self.output_dims = {k: outputs[k].shape[-1] for k in keys}

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(H, W)` the encoder resizes to (from the metadata), or None if unrecorded."""
        size = self.metadata.get("image_size")
        return None if size is None else tuple(int(s) for s in size)

    def describe(self) -> str:
        """The signature in a few lines (what `keras-eqssl-export` prints)."""
        args, kwargs = self.signature.structured_input_signature
        lines = [f"{SIGNATURE_KEY}:"]
        size = self.image_size
        note = ""
        if size is not None:
            how = self.metadata.get("resize") or "no resize: must already be that size"
            note = f"   any batch and size; resized to {size[0]}x{size[1]} ({how}"
            note += ", antialias)" if self.metadata.get("resize") else ")"
        for key, spec in kwargs.items():
            lines.append(f"  input  {key}: {_spec_str(spec)}{note}")
        outputs = self.signature.structured_outputs
        for key in self.output_dims:
            lines.append(f"  output {key}: {_spec_str(outputs[key])}")
        return "\n".join(lines)

    def __call__(self, images, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Features of `images`, uint8 `(N, H, W, 3)` (any H, W), run `batch_size` at a time.

        Returns a dict of float32 arrays `(N, C)`, one per output of the signature.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(
                f"Encoder ({self.path}) takes uint8 images (N, H, W, 3) in [0, 255]; received dtype {images.dtype}. "
                "Convert [0, 1] floats with (x * 255).round().astype(np.uint8)."
            )
        if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 1:
            raise ValueError(
                f"Encoder ({self.path}) takes images (N, H, W, 3) with H, W >= 1; received shape {images.shape}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"Encoder: batch_size must be >= 1; received {batch_size}")
        batch_size = int(batch_size)
        if len(images) == 0:
            return {k: np.zeros((0, d), np.float32) for k, d in self.output_dims.items()}
        chunks = []
        for start in range(0, len(images), batch_size):
            out = self.signature(**{INPUT_KEY: tf.constant(images[start : start + batch_size])})
            chunks.append({k: v.numpy() for k, v in out.items()})
        return {k: np.concatenate([c[k] for c in chunks]) for k in self.output_dims}

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={d}" for k, d in self.output_dims.items())
        return f"Encoder({self.path!r}, image_size={self.image_size}, {dims})"


def load_encoder(path: str | os.PathLike) -> Encoder:
    """Loads an encoder SavedModel written by `export_encoder` (or any with the same signature).

    Checks the `serving_default` signature: input `images` uint8 `(N, H, W, 3)`, outputs
    `embedding`, `invariant`, `equivariant` float32 `(N, C)`.

    Args:
        path: the SavedModel directory (local, or any path `tf.io.gfile` reads, e.g. `gs://`).

    Returns:
        An `Encoder`: call it on uint8 images; `.metadata` holds what the export recorded.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a SavedModel, or its signature is not an encoder's (the message
            says what was expected and what was found).

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
    signatures = dict(loaded.signatures)
    if SIGNATURE_KEY not in signatures:
        raise ValueError(
            f"load_encoder: {path} has no {SIGNATURE_KEY!r} signature (it has {sorted(signatures) or 'none'}); "
            f"expected {EXPECTED}."
        )
    signature = signatures[SIGNATURE_KEY]
    problems = _signature_problems(signature)
    if problems:
        raise ValueError(
            f"load_encoder: {path} is not an encoder export: its {SIGNATURE_KEY!r} signature "
            f"{'; '.join(problems)}. Expected {EXPECTED}."
        )
    return Encoder(path, loaded, signature, _read_metadata(path, loaded))
