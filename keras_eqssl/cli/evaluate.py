"""Evaluates exported encoders (SavedModels) with the probes and writes a report.

    keras-eqssl-evaluate --model=runs/default/export --data=~/.cache/keras_eqssl/m3d-360x12-32px-seed0 --out=eval
    keras-eqssl-evaluate --model=runs/a/export,runs/b/export --names=a,b --data=skimage_photos --out=eval_ab

    keras-eqssl-evaluate --model=runs/mine/export --data=~/my_images --image_size=64 --out=eval_mine
    keras-eqssl-evaluate --model=runs/mine/export --data=tfds:cifar10:test --data_dir=/data/tfds

`--data` is a 3DIEBench-format root (SIE's rotation/colour probes, the parameter probe on the
renders, classification), an image folder (`ROOT/CLASS/image.jpg`: the parameter probe and
classification; flat `ROOT/image.jpg`, unlabelled: the parameter probe only), a prepared tfds
dataset `tfds:NAME[:SPLIT]` (never downloaded), or an image source name (`skimage_photos`,
`fashion_mnist`: the parameter probe and classification). Writes OUT/report.md, OUT/metrics.json and PNG plots; with several
models, a side-by-side table and bar chart (deltas against the first model).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from keras_eqssl.cli._config import parse_flags
from keras_eqssl.cli._quiet import start_tensorflow

_MODEL = flags.DEFINE_list("model", None, "SavedModel folder(s) from keras-eqssl-export or training.", required=True)
_NAMES = flags.DEFINE_list("names", None, "A name per model (default: the folder names).")
_DATA = flags.DEFINE_string(
    "data",
    None,
    "What to probe on: a 3DIEBench-format root; an image folder (ROOT/CLASS/image.jpg labelled, or flat ROOT/image.jpg "
    "unlabelled: no classification); tfds:NAME[:SPLIT] (a prepared tfds dataset, split default test, see --data_dir); "
    "or skimage_photos / fashion_mnist.",
    required=True,
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "--data=tfds:...: the tfds data_dir it was prepared in ('' = $TFDS_DATA_DIR, else tfds's default)."
)
_OUT = flags.DEFINE_string("out", "eval", "Output folder for report.md, metrics.json and the plots.")
_FAMILIES = flags.DEFINE_list("families", ["rotation", "color", "blur", "translation", "all"], "Parameter families.")
_PARTS = flags.DEFINE_list("parts", ["embedding", "invariant", "equivariant"], "Encoder outputs to probe.")
_HEADS = flags.DEFINE_list(
    "heads", ["linear"], "Trained probe heads: linear and/or mlp (the constant row is always there)."
)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Probe repeats: every figure is a mean ± std over them.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size",
    None,
    "Resize 3DIEBench renders to this size first; image folders, tfds and image sources: the side of the centre-"
    "cropped images (default: config.data.image_size's default, 128).",
    lower_bound=1,
)
_PAIRS = flags.DEFINE_integer(
    "pairs_per_object", 32, "3DIEBench probe: train pairs per object and repeat.", lower_bound=1
)
_NUM_IMAGES = flags.DEFINE_integer("num_images", 2720, "Image sources: images to use.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of pairs, parameters and heads.")

IMAGE_SOURCES = ("skimage_photos", "fashion_mnist")


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _image_config(data: str, path: str, image_size: int | None, num_images: int, data_dir: str):
    """The `config.data` of an image folder, a `tfds:NAME[:SPLIT]` or an image-source name."""
    from keras_eqssl.default_config import get_config

    config = get_config()
    d = config.data
    d.num_images, d.image_size = num_images, image_size or d.image_size
    if os.path.isdir(path):
        d.source, d.root = "image_folder", path
    elif data.startswith("tfds:"):
        _, d.tfds_name, *split = data.split(":", 2)
        if not d.tfds_name:
            raise ValueError(f"--data={data!r}: name the dataset, tfds:NAME[:SPLIT] (e.g. tfds:cifar10:test)")
        d.source, d.split = "tfds", split[0] if split and split[0] else "test"
        d.data_dir = data_dir or os.environ.get("TFDS_DATA_DIR", "")
    elif data in IMAGE_SOURCES:
        d.source = data
    else:
        raise ValueError(
            f"--data={data!r} is neither a folder, tfds:NAME[:SPLIT], nor one of {IMAGE_SOURCES} ({path} does not exist)"
        )
    return config


def eval_data(data: str, num_images: int = 2720, data_dir: str = "", **common):
    """`EvalData` for a 3DIEBench root, an image folder, `tfds:NAME[:SPLIT]` or an image-source name;
    errors say what was expected."""
    from keras_eqssl.probes.evaluate import EvalData, source_eval_data

    path = os.path.expanduser(data)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "train_images.npy")):
        return EvalData(threedie_root=path, description=f"Data: 3DIEBench-format root {path}.", **common)
    common.pop("pairs_per_object", None)
    config = _image_config(data, path, common.pop("image_size", None), num_images, data_dir)
    result = source_eval_data(config, **common)
    if result.no_labels:
        print(f"skipping the classification probes: {result.no_labels}")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    names = _NAMES.value or [os.path.basename(os.path.normpath(os.path.dirname(m) if m.endswith("export") else m))
                             for m in _MODEL.value]  # fmt: skip
    if len(names) != len(_MODEL.value) or len(set(names)) != len(names):
        _fail(f"--names needs one distinct name per --model; received names={names} for {len(_MODEL.value)} models")
    start_tensorflow()  # before anything imports it: no CUDA probe lines on a machine without a GPU
    from keras_eqssl.export import load_encoder
    from keras_eqssl.probes.evaluate import evaluate_models

    for path in _MODEL.value:
        try:
            load_encoder(path)  # checks the signature before any work
        except (FileNotFoundError, ValueError) as err:
            _fail(str(err))
    try:
        data = eval_data(
            _DATA.value, families=_FAMILIES.value, parts=_PARTS.value, heads=_HEADS.value,
            image_size=_IMAGE_SIZE.value, pairs_per_object=_PAIRS.value, repeats=_REPEATS.value,
            num_images=_NUM_IMAGES.value, data_dir=_DATA_DIR.value,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    result = evaluate_models(
        dict(zip(names, _MODEL.value)),
        data,
        _OUT.value,
        title=f"keras_eqssl evaluation: {', '.join(names)}",
        command=" ".join(["keras-eqssl-evaluate", *sys.argv[1:]]),
        seed=_SEED.value,
    )
    for name, numbers in result["key_numbers"].items():
        print(f"{name}: " + ", ".join(f"{k} {score.text()}" for k, score in numbers.items()))
    print(f"report: {result['paths']['report']}")


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
