"""Where XLA (`jit_compile=True`) pays on this machine and where it costs: one row per kind of work.

Each row times one function of a SimCLR training step at the shapes the step sees, forward and
backward (the gradient with respect to the inputs and weights), as a `tf.function` without and
with `jit_compile=True`, on the same inputs:

- `conv3x3`: one 3x3 convolution of a ResNet-18 stage (`--channels`, `--map` px map, batch `--batch`);
- `conv_block`: a basic residual block (two 3x3 convs, BatchNorm, ReLU, the shortcut);
- `dense_head`: the projector MLP (512-2048-128 with BatchNorm and ReLU, scaled by `--width`);
- `nt_xent`: the SimCLR loss on 2 x batch embeddings (normalise, similarity matrix, softmax CE);
- `step`: a whole `PairModel` SimCLR training step (ResNet-18, cifar stem), as `fit` runs it.

Printed per row: ms per call without and with XLA, their ratio (XLA / no XLA: above 1 means XLA
is slower), and the first call's extra cost (tracing + XLA compilation). The warm-up calls are
untimed; the best of `--repeats` runs of `--calls` calls is kept.

Usage:
    python tools/bench_xla.py                      # width 0.5, 32 px, batch 64
    python tools/bench_xla.py --width 1 --size 64 --batch 128 --json /tmp/xla.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

try:
    import keras_eqssl  # noqa: F401
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_eqssl  # noqa: F401

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_eqssl.losses import nt_xent  # noqa: E402
from keras_eqssl.machine import cpu_features_line, machine_line  # noqa: E402
from keras_eqssl.methods import PairModel, SimCLR  # noqa: E402
from keras_eqssl.nn import backbone_from_name  # noqa: E402


def _grad_fn(layer, x):
    """forward + backward of `layer` on `x`: the gradients wrt x and the layer's weights."""

    def run(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = layer(inputs, training=True)
            loss = tf.reduce_sum(tf.square(tf.cast(y, tf.float32)))
        return tape.gradient(loss, [inputs, *layer.trainable_variables])

    return run


def _block(channels: int):
    inputs = keras.Input((None, None, channels))
    h = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    h = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    return keras.Model(inputs, keras.layers.ReLU()(h + inputs))


def _head(width: float):
    d, hidden, out = int(512 * width), int(2048 * width), 128
    inputs = keras.Input((d,))
    h = keras.layers.Dense(hidden, use_bias=False)(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    return keras.Model(inputs, keras.layers.Dense(out)(h))


class _Loss(keras.layers.Layer):
    def call(self, x, training=None):
        a, b = tf.split(x, 2)
        return nt_xent(a, b, temperature=0.2)


def rows(args) -> dict:
    """name -> (a function of one argument, its input)."""
    rng = np.random.default_rng(0)
    c = max(8, int(args.channels * args.width))
    fmap = tf.constant(rng.normal(size=(args.batch, args.map, args.map, c)).astype("float32"))
    conv = keras.layers.Conv2D(c, 3, padding="same", use_bias=False)
    conv.build(fmap.shape)
    block = _block(c)
    head = _head(args.width)
    feats = tf.constant(rng.normal(size=(args.batch, int(512 * args.width))).astype("float32"))
    emb = tf.constant(rng.normal(size=(2 * args.batch, 128)).astype("float32"))
    loss = _Loss(name="nt_xent")
    return {
        "conv3x3": (_grad_fn(conv, fmap), fmap),
        "conv_block": (_grad_fn(block, fmap), fmap),
        "dense_head": (_grad_fn(head, feats), feats),
        "nt_xent": (_grad_fn(loss, emb), emb),
    }


def time_function(fn, x, jit: bool, args) -> tuple[float, float]:
    """(best seconds per call, first call's seconds) of `tf.function(fn, jit_compile=jit)(x)`."""
    compiled = tf.function(fn, jit_compile=jit)
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), compiled(x))
    first = time.perf_counter() - start
    for _ in range(args.warmup):
        compiled(x)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.calls):
            out = compiled(x)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        best = min(best, (time.perf_counter() - start) / args.calls)
    return best, first


def time_step(jit: bool, args) -> tuple[float, float]:
    """(best seconds per training step, first step's seconds) of a SimCLR `PairModel`."""
    keras.utils.set_random_seed(0)
    model = PairModel(backbone_from_name("resnet18", stem="cifar", width=args.width), SimCLR(), image_size=args.size)
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit)
    rng = np.random.default_rng(0)
    views = {v: rng.random((args.batch, args.size, args.size, 3), dtype=np.float32) for v in ("v1", "v2")}
    iterator = iter(tf.data.Dataset.from_tensors({"views": views}).repeat())
    model.make_train_function()
    start = time.perf_counter()
    float(model.train_function(iterator)["loss"])
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(max(1, args.calls // 5)):
            logs = model.train_function(iterator)
        float(logs["loss"])
        best = min(best, (time.perf_counter() - start) / max(1, args.calls // 5))
    return best, first


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="view side of the whole step (px)")
    parser.add_argument("--map", type=int, default=16, help="feature-map side for the conv rows (px)")
    parser.add_argument("--channels", type=int, default=128, help="conv channels at width 1")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-step", action="store_true", help="leave out the whole-step row")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    tf.config.set_visible_devices([], "GPU")
    print(
        f"{machine_line()}; {cpu_features_line()}; TF {tf.__version__}, Keras {keras.__version__}; batch {args.batch}, width {args.width}"
    )
    results = {}
    for name, (fn, x) in rows(args).items():
        results[name] = {jit: time_function(fn, x, jit, args) for jit in (False, True)}
        print(f"  {name} done", flush=True)
    if not args.no_step:
        results["step"] = {jit: time_step(jit, args) for jit in (False, True)}
    print()
    print(f"forward + backward, ms per call (best of {args.repeats} x {args.calls}); {machine_line()}")
    print("| what | no XLA ms | XLA ms | XLA / no XLA | first call no XLA s | first call XLA s |")
    print("|---|---|---|---|---|---|")
    table = {}
    for name, r in results.items():
        (plain, plain_first), (xla, xla_first) = r[False], r[True]
        table[name] = {"ms": 1000 * plain, "xla_ms": 1000 * xla, "ratio": xla / plain}
        table[name].update(first_s=plain_first, xla_first_s=xla_first)
        print(
            f"| {name} | {1000 * plain:.1f} | {1000 * xla:.1f} | {xla / plain:.2f} | {plain_first:.2f} | {xla_first:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": vars(args), "machine": machine_line(), "rows": table}, f, indent=2)
    return table


if __name__ == "__main__":
    main()
