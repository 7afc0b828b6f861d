"""Evaluates exported encoders (SavedModels) with the probes and writes a report.

    keras-eqssl-evaluate --model=runs/default/export --data=~/.cache/keras_eqssl/m3d-360x12-32px-seed0 --out=eval
    keras-eqssl-evaluate --model=runs/a/export,runs/b/export --names=a,b --data=skimage_photos --out=eval_ab

`--data` is a 3DIEBench-format root (SIE's rotation/colour probes, the parameter probe on the
renders, classification) or an image source name (`skimage_photos`, `fashion_mnist`: the parameter
probe and classification). Writes OUT/report.md, OUT/metrics.json and PNG plots; with several
models, a side-by-side table and bar chart (deltas against the first model).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from keras_eqssl.cli._config import parse_flags

_MODEL = flags.DEFINE_list("model", None, "SavedModel folder(s) from keras-eqssl-export or training.", required=True)
_NAMES = flags.DEFINE_list("names", None, "A name per model (default: the folder names).")
_DATA = flags.DEFINE_string("data", None, "A 3DIEBench-format root, or skimage_photos / fashion_mnist.", required=True)
_OUT = flags.DEFINE_string("out", "eval", "Output folder for report.md, metrics.json and the plots.")
_FAMILIES = flags.DEFINE_list("families", ["rotation", "color", "blur", "translation", "all"], "Parameter families.")
_PARTS = flags.DEFINE_list("parts", ["embedding", "invariant", "equivariant"], "Encoder outputs to probe.")
_HEADS = flags.DEFINE_list(
    "heads", ["linear"], "Trained probe heads: linear and/or mlp (the constant row is always there)."
)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Probe repeats: every figure is a mean ± std over them.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Resize 3DIEBench renders to this size first.")
_PAIRS = flags.DEFINE_integer(
    "pairs_per_object", 32, "3DIEBench probe: train pairs per object and repeat.", lower_bound=1
)
_NUM_IMAGES = flags.DEFINE_integer("num_images", 2720, "Image sources: images to use.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of pairs, parameters and heads.")

IMAGE_SOURCES = ("skimage_photos", "fashion_mnist")


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def eval_data(data: str, **common):
    """`EvalData` for a 3DIEBench root or an image-source name; errors say what was expected."""
    from keras_eqssl.probes.evaluate import EvalData, image_eval_data

    path = os.path.expanduser(data)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "train_images.npy")):
            raise ValueError(
                f"--data={data}: a folder must be a 3DIEBench-format root (train_images.npy, val_images.npy, "
                f"SYNSET/OBJ/image_k.jpg + latent_k.npy); {path} has no train_images.npy"
            )
        return EvalData(threedie_root=path, description=f"Data: 3DIEBench-format root {path}.", **common)
    if data not in IMAGE_SOURCES:
        raise ValueError(f"--data={data!r} is neither a folder nor one of {IMAGE_SOURCES}")
    import numpy as np

    from keras_eqssl.data import source_from_config
    from keras_eqssl.default_config import get_config

    config = get_config()
    config.data.source = data
    config.data.num_images = _NUM_IMAGES.value
    source = source_from_config(config).take(_NUM_IMAGES.value)
    batches = list(source.batch(4096).as_numpy_iterator())
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    common.pop("pairs_per_object", None)
    common.pop("image_size", None)
    return image_eval_data(images, labels, data, **common)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    names = _NAMES.value or [os.path.basename(os.path.normpath(os.path.dirname(m) if m.endswith("export") else m))
                             for m in _MODEL.value]  # fmt: skip
    if len(names) != len(_MODEL.value) or len(set(names)) != len(names):
        _fail(f"--names needs one distinct name per --model; received names={names} for {len(_MODEL.value)} models")
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
