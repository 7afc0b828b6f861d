"""Keras' unfused BatchNorm against `FusedBatchNormalization`, per precision, in one run.

Each row times, forward and backward (gradients wrt the input and the weights) as a
`tf.function`, the same computation built twice, with `fused=False` (Keras' own ops) and with
the fused kernel:

- `bn`: one BatchNorm on a ResNet-18 stage-1 map (`--batch` x `--size`/4 px x 64 channels);
- `resnet18`: ResNet-18 with the ImageNet stem at `--size` px, batch `--batch`
  (`ResNetBackbone(fused_bn=...)`), the backbone's share of a training step.

Printed per precision: ms per call of each and their ratio (fused / Keras: below 1 means the
fused kernel is faster), with the CPU model, its bf16 flags and whether oneDNN is on. The best
of `--repeats` runs of `--calls` calls is kept, after untimed warm-up calls.

Usage:
    python tools/bench_batch_norm.py                                   # 96 px, batch 128, f32 + bf16
    python tools/bench_batch_norm.py --precision float32 --width 0.25 --json /tmp/bn.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import parse_precisions  # noqa: E402  (both set the TF env before importing it)
from bench_xla import _grad_fn, time_function  # noqa: E402

# isort: split

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_eqssl.machine import cpu_features_line, machine_line  # noqa: E402
from keras_eqssl.nn import FusedBatchNormalization, ResNetBackbone  # noqa: E402
from keras_eqssl.nn.resnet_backbone import scaled_filters  # noqa: E402


class _Pooled:
    """A backbone as `_grad_fn` takes it: called on images, returns the pooled features."""

    def __init__(self, backbone):
        self.backbone = backbone

    @property
    def trainable_variables(self):
        return self.backbone.trainable_variables

    def __call__(self, images, training=True):
        return self.backbone(images, training=training)["pooled"]


def _layers(fused: bool, args) -> dict:
    """name -> (layer, input) for one setting; the same seed, so both settings get equal weights."""
    keras.utils.set_random_seed(0)
    channels = scaled_filters(64, args.width)
    fmap = tf.random.normal([args.batch, args.size // 4, args.size // 4, channels], seed=1)
    images = tf.random.normal([args.batch, args.size, args.size, 3], seed=2)
    backbone = ResNetBackbone([2, 2, 2, 2], stem="imagenet", width=args.width, fused_bn=fused)
    return {"bn": (FusedBatchNormalization(fused=fused), fmap), "resnet18": (_Pooled(backbone), images)}


def measure(args) -> dict:
    """{precision: {row: {"keras_ms", "fused_ms", "ratio"}}}."""
    results, previous = {}, keras.mixed_precision.global_policy()
    for precision in args.precisions:
        keras.mixed_precision.set_global_policy(precision)
        rows = {}
        for fused in (False, True):
            for name, (layer, x) in _layers(fused, args).items():
                seconds, _ = time_function(_grad_fn(layer, x), x, False, args)
                rows.setdefault(name, {})["fused_ms" if fused else "keras_ms"] = 1000 * seconds
        for row in rows.values():
            row["ratio"] = row["fused_ms"] / row["keras_ms"]
        results[precision] = rows
        print(f"  {precision} done", flush=True)
    keras.mixed_precision.set_global_policy(previous)
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", default="float32,mixed_bfloat16", help="comma-separated policies")
    parser.add_argument("--batch", type=int, default=128, help="images per call (an STL step: 2 x 64 views)")
    parser.add_argument("--size", type=int, default=96, help="image side (px)")
    parser.add_argument("--width", type=float, default=1.0, help="ResNet-18 width multiplier")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    args.precisions = parse_precisions(args.precision, parser)
    results = measure(args)
    print()
    print(
        f"forward + backward, ms per call (best of {args.repeats} x {args.calls}); batch {args.batch}, {args.size} px, width {args.width}"
    )
    print(f"{machine_line()}; {cpu_features_line()}; TF {tf.__version__}, Keras {keras.__version__}")
    print("| precision | what | Keras BN ms | fused BN ms | fused / Keras |")
    print("|---|---|---|---|---|")
    for precision, rows in results.items():
        for name, r in rows.items():
            print(f"| {precision} | {name} | {r['keras_ms']:.1f} | {r['fused_ms']:.1f} | {r['ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": vars(args), "machine": machine_line(), "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
