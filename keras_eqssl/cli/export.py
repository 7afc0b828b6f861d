"""Exports the encoder of a trained model as a TensorFlow SavedModel that serves features.

    keras-eqssl-export --checkpoint=runs/vicreg_recon --out=exports/vicreg_recon
    keras-eqssl-export --checkpoint=runs/x/checkpoints/ckpt-00001000.keras --out=serving/eqssl/1
    python -m keras_eqssl.cli.export --checkpoint=runs/x/checkpoints --out=exports/x --resize=area

    keras-eqssl-export --config=configs/stl.py --torch_checkpoint=stl_resnet18.pth --out=exports/stl_official

`--checkpoint` is a `.keras` file, a `checkpoints/` directory (its newest checkpoint) or a
workdir of `keras-eqssl-train` (its `model.keras`, else its newest checkpoint). The SavedModel
holds the backbone and the invariant/equivariant split only, behind the signatures
`serving_default(images: float32 (N, H, W, 3) in [0, 1])` and `serving_uint8(images: uint8
(N, H, W, 3))`, both -> `{"embedding", "invariant", "equivariant"}` (docs/serving.md); the app
loads it back, runs it on two blank images and prints the signatures and where it wrote.

`--torch_checkpoint` exports weights released with the authors' PyTorch code instead: the model of
`--config` is built and its backbone is loaded from the `torch.save` file (read without torch;
torchvision ResNet or timm/DINO ViT names, under `--torch_prefix`, found when not given), so the
authors' encoder is served and probed (`keras-eqssl-evaluate`) like one trained here.
Exit status 2 with a one-line message naming the path when the checkpoint or the output is
unusable: `--out` a directory holding files no export wrote (an earlier export is replaced, and
said so), read-only, under a file, or being written by another export at the same time.
`KERAS_EQSSL_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags, logging  # noqa: E402

from keras_eqssl.cli._config import checked, define_config_flag, input_errors_exit, parse_flags  # noqa: E402
from keras_eqssl.cli._quiet import start_tensorflow  # noqa: E402

start_tensorflow()  # before anything imports it: no CUDA probe lines on a machine without a GPU


_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A .keras model, a checkpoints/ directory (newest) or a training workdir."
)
_TORCH_CHECKPOINT = flags.DEFINE_string(
    "torch_checkpoint", None, "A torch.save file of the authors' code: its backbone goes into the --config model."
)
_TORCH_PREFIX = flags.DEFINE_string(
    "torch_prefix", None, "The backbone's prefix in the torch state dict ('backbone.'); found when not given."
)
_TORCH_KEY = flags.DEFINE_string(
    "torch_key", None, "The checkpoint entry holding the state dict ('model', 'teacher'); found when not given."
)
_CONFIG = define_config_flag()
_OUT = flags.DEFINE_string(
    "out",
    None,
    "Directory to write the SavedModel to: new, empty or an earlier export (replaced); anything else is refused.",
    required=True,
)
_RESIZE = flags.DEFINE_string(
    "resize",
    "bilinear",
    "How images of another size are resized to the training size: bilinear, bicubic, area, nearest, lanczos3, "
    "lanczos5, gaussian or mitchellcubic (antialiased); 'none' makes the encoder refuse other sizes.",
)


def export(checkpoint: str, out: str, resize: str = "bilinear", model=None) -> str:
    """Exports `checkpoint` (or `model`, already built) to `out`, checks the result loads and runs, and prints a summary."""
    import numpy as np

    from keras_eqssl.export import (
        RESIZE_METHODS,
        check_export_dir,
        export_encoder,
        export_lock,
        load_encoder,
        load_model,
        resolve_checkpoint,
    )

    if resize not in (*RESIZE_METHODS, "none"):
        raise ValueError(f"--resize must be one of {', '.join(RESIZE_METHODS)} or none; received {resize!r}")
    with export_lock(out):  # from the check of --out to the check run: no other export writes it meanwhile
        check_export_dir(out)  # before the model loads
        file = checkpoint if model is not None else resolve_checkpoint(checkpoint)
        model = model if model is not None else load_model(file)
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


def model_from_torch_checkpoint(config, path: str, prefix: str | None = None, key: str | None = None):
    """The model of `config` with its backbone loaded from a torch checkpoint; prints what was loaded."""
    from keras_eqssl.methods.factory import model_from_config
    from keras_eqssl.nn import load_backbone_weights, read_state_dict, state_dict_from

    model = model_from_config(config)
    try:
        weights = state_dict_from(read_state_dict(path), key=key)
        report = load_backbone_weights(model.backbone, weights, prefix)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from err
    print(f"keras-eqssl-export: {path} -> {model.backbone.name}: {report}")
    return model


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if (_CHECKPOINT.value is None) == (_TORCH_CHECKPOINT.value is None):
        raise app.UsageError("Give exactly one of --checkpoint and --torch_checkpoint")
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines about saving
    try:
        with input_errors_exit():  # the output directory's errors, a damaged checkpoint
            if _TORCH_CHECKPOINT.value is not None:
                model = model_from_torch_checkpoint(
                    checked(_CONFIG), _TORCH_CHECKPOINT.value, _TORCH_PREFIX.value, _TORCH_KEY.value
                )
                export(_TORCH_CHECKPOINT.value, _OUT.value, _RESIZE.value, model=model)
            else:
                export(_CHECKPOINT.value, _OUT.value, _RESIZE.value)
    except (FileNotFoundError, ValueError) as err:  # a missing checkpoint, a file that is no model
        if os.environ.get("KERAS_EQSSL_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
