"""Export: the encoder of a trained model as a TensorFlow SavedModel that serves features.

- `export_encoder(model, out_dir)`: backbone + invariant/equivariant split behind two signatures,
  `serving_default` (float32 `(N, H, W, 3)` images in [0, 1], any size; values outside [0, 1]
  raise) and `serving_uint8` (uint8 images in [0, 255]) -> `{"embedding", "invariant",
  "equivariant"}` float32; no heads, decoder or target network. The contract: docs/serving.md.
- `export_checkpoint(path, out_dir)`: the same from a `.keras` checkpoint, a `checkpoints/`
  directory or a training workdir (`keras-eqssl-export --checkpoint=PATH --out=DIR`).
- `load_model(path)`: the trained model (any `SSLModel`) that such a path stands for, without its
  optimizer: `keras.models.load_model` after a check that the archive is intact.
- `load_encoder(path)` -> `Encoder`: checks the signatures; `encoder(images)` takes uint8 or
  [0, 1] float images (and format-1 exports, whose `serving_default` takes uint8), batches over N
  and returns NumPy arrays; `encoder.metadata` holds image size, split, mean/std and the model summary.
  An `Encoder` is the probes' `encode` callable as it is (`keras_eqssl.probes`).
  Images it cannot take (another dtype, a shape other than `(N, H, W, 3)`, floats outside [0, 1])
  raise `ImagesError`, also through `encoder.signatures[name](images=...)`.
- The output directory: new, empty or an earlier export (replaced); anything else is refused
  (`ExportDirError`), an unwritable one is `ExportWriteError`, and a second export writing the
  same directory at once gets `ExportBusyError` (`export_lock`; `check_export_dir` checks first).

- `feature_model(source)` -> a trainable `keras.Model`, [0, 1] images -> pooled features (the
  normalisation included), from a model, a `.keras` file, a checkpoint or a workdir;
  `classifier(features, num_classes)` puts a Dense head on it (`finetune`, loaded lazily: it
  imports Keras). The fine-tuning recipe: docs/guide/finetuning.md.

Loading needs TensorFlow only: `tf.saved_model.load(out_dir).signatures["serving_default"]`
works in a process that never imports keras_eqssl, and TensorFlow Serving serves it as is.
"""

from keras_eqssl.export.encoder import (
    METADATA_FILE,
    OUTPUT_KEYS,
    SIGNATURE_KEY,
    UINT8_SIGNATURE_KEY,
    CheckedSignature,
    Encoder,
    ImagesError,
    load_encoder,
)
from keras_eqssl.export.saved_model import (
    RESIZE_METHODS,
    ExportBusyError,
    ExportDirError,
    ExportWriteError,
    check_export_dir,
    export_checkpoint,
    export_encoder,
    export_lock,
    load_model,
    resolve_checkpoint,
)
from keras_eqssl.lazy_exports import lazy_getattr as _lazy_getattr

_LAZY = {name: "keras_eqssl.export.finetune" for name in ("InferenceMode", "classifier", "feature_model")}
__getattr__ = _lazy_getattr(__name__, _LAZY, globals())  # Keras loads only when one of these is used

__all__ = [
    "InferenceMode",
    "classifier",
    "feature_model",
    "METADATA_FILE",
    "OUTPUT_KEYS",
    "RESIZE_METHODS",
    "SIGNATURE_KEY",
    "UINT8_SIGNATURE_KEY",
    "CheckedSignature",
    "Encoder",
    "ExportBusyError",
    "ExportDirError",
    "ExportWriteError",
    "ImagesError",
    "check_export_dir",
    "export_checkpoint",
    "export_encoder",
    "export_lock",
    "load_encoder",
    "load_model",
    "resolve_checkpoint",
]
