"""Exports the encoder of a trained model as a TensorFlow SavedModel that serves features.

    keras-eqssl-export --checkpoint=runs/vicreg_recon --out=exports/vicreg_recon
    keras-eqssl-export --checkpoint=runs/x/checkpoints/ckpt-00001000.keras --out=serving/eqssl/1
    python -m keras_eqssl.cli.export --checkpoint=runs/x/checkpoints --out=exports/x --resize=area

`--checkpoint` is a `.keras` file, a `checkpoints/` directory (its newest checkpoint) or a
workdir of `keras-eqssl-train` (its `model.keras`, else its newest checkpoint). The SavedModel
holds the backbone and the invariant/equivariant split only, behind the signatures
`serving_default(images: float32 (N, H, W, 3) in [0, 1])` and `serving_uint8(images: uint8
(N, H, W, 3))`, both -> `{"embedding", "invariant", "equivariant"}` (docs/serving.md); the app
loads it back, runs it on two blank images and prints the signatures and where it wrote.
Exit status 2 with a message naming the path when the checkpoint or the output is unusable.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags, logging  # noqa: E402

from keras_eqssl.cli._config import parse_flags  # noqa: E402

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A .keras model, a checkpoints/ directory (newest) or a training workdir.", required=True
)
_OUT = flags.DEFINE_string(
    "out", None, "Directory to write the SavedModel to (an earlier export there is replaced).", required=True
)
_RESIZE = flags.DEFINE_string(
    "resize",
    "bilinear",
    "How images of another size are resized to the training size: bilinear, bicubic, area, nearest, lanczos3, "
    "lanczos5, gaussian or mitchellcubic (antialiased); 'none' makes the encoder refuse other sizes.",
)


def export(checkpoint: str, out: str, resize: str = "bilinear") -> str:
    """Exports `checkpoint` to `out`, checks the result loads and runs, and prints a summary."""
    import numpy as np

    from keras_eqssl.export import RESIZE_METHODS, export_encoder, load_encoder, load_pair_model, resolve_checkpoint

    if resize not in (*RESIZE_METHODS, "none"):
        raise ValueError(f"--resize must be one of {', '.join(RESIZE_METHODS)} or none; received {resize!r}")
    file = resolve_checkpoint(checkpoint)
    model = load_pair_model(file)
    size = tuple(model.image_size)
    print(f"keras-eqssl-export: {type(model).__name__} {model.name!r} from {file} (image size {size[0]}x{size[1]})")
    export_encoder(
        model, out, resize=None if resize == "none" else resize, metadata={"checkpoint": os.path.abspath(file)}
    )
    encoder = load_encoder(out)
    features = encoder(np.zeros((2, *size, 3), np.uint8))
    shapes = ", ".join(f"{k} {v.shape}" for k, v in features.items())
    print(f"wrote {out}: {encoder.metadata.get('num_variables')} backbone variables, no heads or decoder")
    print(encoder.describe())
    print(f"metadata: {os.path.join(out, 'keras_eqssl_export.json')}; check run on 2 images: {shapes}")
    print(
        f'load it: tf.saved_model.load("{out}").signatures["serving_default"](images=float_images_0_to_1) '
        '(or ["serving_uint8"](images=uint8_images))'
    )
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines about saving
    try:
        export(_CHECKPOINT.value, _OUT.value, _RESIZE.value)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
