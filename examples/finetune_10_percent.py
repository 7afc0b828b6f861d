"""Fine-tune a pretrained encoder with 10% (and 1%) of the labels, against a linear probe.

What it shows: the low-label evaluation of `keras_eqssl.probes.low_label_probe`. For each label
fraction and seed it draws that fraction of every class (at least one image each), then scores on
a held-out split (top-1, mean ± std over the seeds):

- `constant`: the most frequent class (chance);
- `linear`: the linear probe on the frozen features;
- `finetune`: the recipe of docs/guide/finetuning.md (`keras_eqssl.feature_model` + a Dense head
  from `keras_eqssl.export.classifier`): the head alone first, then everything at a 10x smaller
  learning rate, BatchNorm on its pretrained statistics.

    python examples/finetune_10_percent.py --model=runs/default   # a workdir, checkpoint or model.keras
    python examples/finetune_10_percent.py --tiny                  # a tiny untrained network (seconds)
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
from labelled_photos import labelled_photos

import keras_eqssl as eq
from keras_eqssl.probes.low_label import finetuner


def tiny_model_file(folder: str) -> str:
    """A tiny untrained PairModel saved as `model.keras` (stands in for a training run's)."""
    keras.utils.set_random_seed(0)
    backbone = eq.backbone_from_name("resnet18", stem="cifar", width=0.0625)
    model = eq.PairModel(backbone, eq.SimCLR(projector_units=[32, 16]), image_size=16)
    path = os.path.join(folder, "model.keras")
    model.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a training workdir, checkpoint or model.keras")
    parser.add_argument("--images", type=int, default=3200, help="labelled training images (and as many held out)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="a tiny untrained network, 10% only, 2 seeds")
    args = parser.parse_args()
    if not (args.model or args.tiny):
        parser.error("give --model=PATH (a training run), or --tiny")
    scratch = tempfile.TemporaryDirectory()  # the tiny model's file, deleted at exit
    source = tiny_model_file(scratch.name) if args.tiny else args.model
    if args.tiny:  # 320 images, 10% only, 2 seeds, a short and steep fine-tuning
        n, fractions, seeds = 320, (0.1,), (0, 1)
        recipe = dict(epochs=3, head_epochs=10, head_learning_rate=1e-2, learning_rate=1e-3, batch_size=16)
    else:
        n, fractions, seeds = args.images, (0.01, 0.1), tuple(range(args.seeds))
        recipe = dict(epochs=args.epochs)  # the rest: finetuner's defaults (Adam 1e-3 head, 1e-4 all, batch 32)

    features = eq.feature_model(source)  # images in [0, 1] -> pooled features, the model's normalisation inside
    size = features.input_shape[1]
    train, test = labelled_photos(n, size, seed=0), labelled_photos(n, size, seed=1)

    def encode(images):  # the probes' encode: uint8 images -> {"embedding": (N, D)}
        return {"embedding": features.predict(images / 255.0, verbose=0)}

    scores = eq.low_label_probe(
        encode, train, test, fractions=fractions, seeds=seeds, fit_predict=finetuner(source, **recipe)
    )  # fmt: skip
    print(eq.low_label_table(scores))


if __name__ == "__main__":
    main()
