"""Training throughput of every method in `PairModel`, with and without cross-attention reconstruction.

Each row is one `PairModel` training step (`model.train_function`, the step `fit` runs: forward on
both views, the losses, the gradients, Adam, the EMA target move for BYOL) on a ResNet-18 at
64 px, batch 128, on the CPU, with `compile(jit_compile=False)` and `compile(jit_compile=True)`:

- `simclr`, `byol`, `vicreg`, `barlow` (Barlow Twins), `simsiam`: the invariance loss with its
  published heads (the layers' defaults), on the whole 512-channel representation (no split);
- `<method>+recon`: the same loss on the first half of the channels (split 256/256, scaled by
  `--width`) plus `CrossAttentionReconstruction` (reconstruct v2, query from the target, decoder
  Dense 256 and up-convolutions 128-64-32 to a 64 px target; `--decoder-dim`, `--decoder-filters`,
  `--target-size` change them);
- `ciper`: SimCLR + `ParameterPrediction(["crop", "color"])` (CIPER's pair mode), with the
  param_specs of the `simclr` policy, on the whole representation;
- `stl`: SimCLR + `STL()` (its published heads: P_eq 512-128, g 128-128, P_t 128-128, the
  hypernetwork d -> d*d) on the whole representation, batches of the `stl` policy (aligned pairs);
- `essl`: SimCLR + `ESSL()` on the whole representation, batches of the `essl` policy (the pair
  plus one crop of half the view side in four rotations: 4 more backbone passes at 1/4 the pixels);
- `sie`: VICReg + `SIE()` on a half/half split, with a random relative rotation per pair.

"x base" is a row's step time over its base's (same jit): `+recon` over the method, `ciper`,
`stl` and `essl` over `simclr`, `sie` over `vicreg` (from wall time; "x base CPU" from CPU time).
STL's official PyTorch code costs 1.25x SimCLR; the target for ours is the same or less.

The backbone is `backbone_from_name("resnet18", stem="cifar", width=--width)`: the cifar stem
(3x3/1 conv, no max-pool, output stride 8) gives an 8x8x512 feature map at 64 px, so the
reconstruction branch has 64 tokens to cross-attend. (The imagenet and sie stems have stride 32:
a 2x2 map at 64 px.) The cifar stem runs the first stage at the full 64x64: the stages see the
map sizes, and the FLOPs, of an imagenet-stem ResNet-18 at 256 px.

The data pipeline is left out: one batch of views (and the parameters that made them) is made
once, by the `simclr` policy from uniform-noise uint8 images, and fed again and again from
`tf.data.Dataset.from_tensors(batch).repeat().prefetch(1)`. So the figures are the model's step
alone.

Timing: for each model, `--warmup` steps are run untimed (the first traces the step function
and, with jit, compiles it with XLA), then `--repeats` runs of `--steps` steps; the best run is
kept. The number reported is pairs per second (a pair = the two views of one source image; views/s is twice
that) and process CPU time (all cores) per pair, which other work on the machine disturbs less
than wall time. For `+recon` rows, "recon x" is the time per step with reconstruction over the
time of the same method without it, same jit setting. Target: recon x <= 1.3.

Each group (a method and its `+recon`, one jit setting) runs in its own child process (a fresh
Python and TensorFlow), so one group's memory (a few GB per compiled step at batch 128, which the
allocator keeps) does not add to the next; `--in-process` runs them all in this process instead.
A configuration that fails (e.g. an op XLA cannot compile on the CPU, or a crashed child) prints
`failed: <reason>` in its row and the benchmark goes on.

Usage:
    python tools/bench_train.py                     # all methods, jit off and on, ResNet-18 64 px batch 128
    python tools/bench_train.py --methods vicreg,simclr --no-jit --steps 5 --repeats 3
    python tools/bench_train.py --width 0.25 --batch 32 --json /tmp/bench_train.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the CPU figures, even where a GPU is present

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

try:
    import keras_eqssl  # noqa: F401
except ImportError:  # run from a checkout that is not installed: `python tools/bench_train.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from keras_eqssl.augment.policies import RotatedCropPolicy, stl  # noqa: E402
from keras_eqssl.augment.policies import simclr as simclr_policy  # noqa: E402
from keras_eqssl.machine import machine_line  # noqa: E402
from keras_eqssl.methods import (  # noqa: E402
    BYOL,
    ESSL,
    SIE,
    STL,
    BarlowTwins,
    CrossAttentionReconstruction,
    PairModel,
    ParameterPrediction,
    SimCLR,
    SimSiam,
    VICReg,
)
from keras_eqssl.nn import backbone_from_name  # noqa: E402

tf.get_logger().setLevel("ERROR")

# name -> invariance loss; every one also runs "+recon". CIPER has no recon variant.
INVARIANCES = {"simclr": SimCLR, "byol": BYOL, "vicreg": VICReg, "barlow": BarlowTwins, "simsiam": SimSiam}
OBJECTIVE_ROWS = {"ciper": "simclr", "stl": "simclr", "essl": "simclr", "sie": "vicreg"}  # row -> its base row
METHODS = (*INVARIANCES, *OBJECTIVE_ROWS)
ALIASES = {"barlowtwins": "barlow", "barlow_twins": "barlow"}
RECON = "+recon"


def group(method: str) -> list[str]:
    """The rows one child process times: a method and its `+recon`, or one objective row."""
    return [method] if method in OBJECTIVE_ROWS else [method, method + RECON]


def base_of(name: str) -> str | None:
    """The row a row's "x base" divides by."""
    return name.removesuffix(RECON) if name.endswith(RECON) else OBJECTIVE_ROWS.get(name)


def make_batch(batch: int, size: int, seed: int = 0, method: str = "simclr") -> tuple[dict, dict]:
    """One training batch `{"views", "params"}` as NumPy arrays, and the policy's param_specs.

    The `simclr` policy's pair; for `stl` the `stl` policy's aligned pairs, for `essl` the `essl`
    policy's pair and rotated crops, for `sie` the pair and a random unit quaternion per pair."""
    policies = {
        "stl": lambda: stl(size),
        "essl": lambda: RotatedCropPolicy(simclr_policy(size), size=max(size // 2, 8)),
    }
    policy = policies.get(method, lambda: simclr_policy(size))()
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, size=(batch, size, size, 3), dtype=np.uint8)
    views, params = policy(source, seed=seed, step=0)
    data = {
        "views": {v: x.numpy() for v, x in views.items()},
        "params": {v: {k: x.numpy() for k, x in p.items()} for v, p in params.items()},
    }
    if method == "sie":
        q = rng.normal(size=(batch, 4)).astype("float32")
        data["rel_rotation"] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return data, {v: s for v, s in policy.param_specs().items() if v in ("v1", "v2")}


def build_model(name: str, args, param_specs: dict) -> PairModel:
    """The `PairModel` of one row (see the module docstring)."""
    backbone = backbone_from_name("resnet18", stem="cifar", width=args.width)
    base, recon = name.removesuffix(RECON), name.endswith(RECON)
    dim = backbone.feature_dim
    if base == "ciper":
        return PairModel(
            backbone,
            SimCLR(),
            [ParameterPrediction(["crop", "color"])],
            image_size=args.size,
            param_specs=param_specs,
        )
    if base in ("stl", "essl"):
        return PairModel(backbone, SimCLR(), [STL() if base == "stl" else ESSL()], image_size=args.size)
    if base == "sie":
        return PairModel(backbone, VICReg(), [SIE()], split=(dim // 2, dim - dim // 2), image_size=args.size)
    objectives, split = [], None
    if recon:
        split = (dim // 2, dim - dim // 2)
        objectives = [
            CrossAttentionReconstruction(
                target_size=min(args.target_size, args.size),
                decoder_dim=args.decoder_dim,
                decoder_filters=args.decoder_filters,
            )
        ]
    return PairModel(backbone, INVARIANCES[base](), objectives, split=split, image_size=args.size)


def short_error(err: BaseException) -> str:
    """The first meaningful line of an error, at most 160 characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 160 else text[:157] + "..."


class Runner:
    """One compiled model and an iterator over the repeated batch; `run(steps)` times `steps` steps."""

    def __init__(self, name: str, jit: bool, args, data: dict, param_specs: dict):
        self.name, self.jit = name, jit
        self.model = build_model(name, args, param_specs)
        self.model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
        self.model.make_train_function()
        ds = tf.data.Dataset.from_tensors(data).repeat().prefetch(1)
        self.iterator = iter(ds)

    def run(self, steps: int) -> tuple[float, float, float]:
        """(wall seconds, process CPU seconds, last loss) for `steps` training steps."""
        cpu_start, start = os.times(), time.perf_counter()
        for _ in range(steps):
            logs = self.model.train_function(self.iterator)
        loss = float(logs["loss"])  # waits for the last step
        elapsed, cpu_end = time.perf_counter() - start, os.times()
        return elapsed, (cpu_end.user + cpu_end.system) - (cpu_start.user + cpu_start.system), loss


def bench_group(names: list[str], jit: bool, args, data: dict, param_specs: dict) -> dict:
    """Builds, warms up and times the rows of one group (a method and its +recon), one after the other.

    One model at a time, so that the memory of a step (several GB at batch 128) is needed once.
    Returns name -> {"step_s", "cpu_s"} (best run, per step) or {"error"}."""
    out = {}
    for name in names:
        runner = None
        try:
            runner = Runner(name, jit, args, data, param_specs)
            start = time.perf_counter()
            for _ in range(args.warmup):
                runner.run(1)
            print(
                f"  {name:<14} jit={str(jit):<5} built and warmed up in {time.perf_counter() - start:.1f} s", flush=True
            )
            best = [float("inf"), float("inf")]
            for r in range(args.repeats):
                seconds, cpu_seconds, loss = runner.run(args.steps)
                best = [min(best[0], seconds / args.steps), min(best[1], cpu_seconds / args.steps)]
                print(
                    f"  {name:<14} jit={str(jit):<5} run {r + 1}: {seconds / args.steps:7.2f} s/step  "
                    f"{args.batch * args.steps / seconds:7.1f} pairs/s  "
                    f"(CPU {1000 * cpu_seconds / (args.steps * args.batch):.1f} ms/pair, loss {loss:.4g})",
                    flush=True,
                )
            out[name] = {"step_s": best[0], "cpu_s": best[1]}
        except Exception as err:  # noqa: BLE001 - a failing configuration is a row, not the end of the run
            out[name] = {"error": short_error(err)}
            print(f"  {name:<14} jit={str(jit):<5} failed: {out[name]['error']}", flush=True)
        del runner
        keras.backend.clear_session()
        gc.collect()
    return out


def group_in_child(names: list[str], jit: bool, args) -> dict:
    """`bench_group` in a fresh Python process, so that every group starts with the memory of none
    before it (ResNet-18 at batch 128 holds several GB per compiled step, which the allocator keeps)
    and a crash (an XLA abort, the OOM killer) is a failed row. Its progress lines go to our stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "group.json")
        command = [sys.executable, os.path.abspath(__file__), *child_args(args)]
        command += ["--child-group", ",".join(names), "--child-jit", str(int(jit)), "--child-out", out_path]
        proc = subprocess.run(command, stdout=None, stderr=subprocess.PIPE, text=True)
        if proc.returncode == 0 and os.path.exists(out_path):
            with open(out_path) as f:
                return json.load(f)
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = f"worker exited with {proc.returncode}" + (f" ({lines[-1][:120]})" if lines else "")
        if proc.returncode in (-9, 137):
            reason += ", killed (out of memory?)"
        print(f"  {'/'.join(names)} jit={jit}: failed: {reason}", flush=True)
        return {name: {"error": reason} for name in names}


def child_args(args) -> list[str]:
    """The command-line options that set up a group, for its child process."""
    out = ["--batch", str(args.batch), "--size", str(args.size), "--width", str(args.width)]
    out += ["--steps", str(args.steps), "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    out += ["--target-size", str(args.target_size), "--decoder-dim", str(args.decoder_dim)]
    if args.decoder_filters is not None:
        out += ["--decoder-filters", str(args.decoder_filters)]
    return out


def parse_methods(text: str, parser) -> list[str]:
    methods = []
    for item in text.split(","):
        item = ALIASES.get(item.strip().lower(), item.strip().lower())
        if not item:
            continue
        if item not in METHODS:
            parser.error(f"unknown method {item!r}; expected some of {', '.join(METHODS)}")
        if item not in methods:
            methods.append(item)
    if not methods:
        parser.error("--methods is empty")
    return methods


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default {','.join(METHODS)})")
    parser.add_argument("--batch", type=int, default=128, help="pairs per step (default 128)")
    parser.add_argument("--size", type=int, default=64, help="view side in px (default 64)")
    parser.add_argument("--width", type=float, default=1.0, help="ResNet-18 width multiplier (default 1.0)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each; best is kept (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first, incl. tracing/XLA (default 1)")
    parser.add_argument("--target-size", type=int, default=64, help="recon target side, capped at --size (default 64)")
    parser.add_argument("--decoder-dim", type=int, default=256, help="recon decoder Dense width (default 256)")
    parser.add_argument(
        "--decoder-filters", type=int, default=None, help="first up-conv's channels, halved each step (default dim/2)"
    )
    jit_group = parser.add_mutually_exclusive_group()
    jit_group.add_argument("--no-jit", action="store_true", help="only jit_compile=False")
    jit_group.add_argument("--jit-only", action="store_true", help="only jit_compile=True")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    parser.add_argument("--in-process", action="store_true", help="run every group in this process (no children)")
    parser.add_argument("--child-group", help=argparse.SUPPRESS)  # internal: the child process of one group
    parser.add_argument("--child-jit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_group:
        tf.config.set_visible_devices([], "GPU")
        data, param_specs = make_batch(args.batch, args.size, method=args.child_group.split(",")[0])
        out = bench_group(args.child_group.split(","), bool(args.child_jit), args, data, param_specs)
        with open(args.child_out, "w") as f:
            json.dump(out, f)
        return
    methods = parse_methods(args.methods, parser)
    if min(args.batch, args.size, args.steps, args.repeats, args.target_size, args.decoder_dim) < 1:
        parser.error("--batch, --size, --steps, --repeats, --target-size and --decoder-dim must be positive")
    if args.warmup < 0 or args.width <= 0:
        parser.error("--warmup must be >= 0 and --width > 0")
    jits = [False] if args.no_jit else [True] if args.jit_only else [False, True]

    tf.config.set_visible_devices([], "GPU")
    feature_dim = backbone_from_name("resnet18", stem="cifar", width=args.width).feature_dim
    print(
        f"{machine_line()}; TF {tf.__version__}, Keras {keras.__version__}; ResNet-18 (cifar stem, width "
        f"{args.width}, {feature_dim} channels), {args.size} px, batch {args.batch}; warm-up {args.warmup} + "
        f"timed {args.steps} steps, best of {args.repeats}; data: one repeated in-memory batch (no pipeline time).",
        flush=True,
    )
    results = {}
    start = time.perf_counter()
    for jit in jits:
        for method in methods:
            names = group(method)
            if args.in_process:
                data, param_specs = make_batch(args.batch, args.size, method=method)
                figures = bench_group(names, jit, args, data, param_specs)
            else:
                figures = group_in_child(names, jit, args)
            for name in names:
                results[(name, jit)] = figures[name]
    wall = time.perf_counter() - start

    rows = []
    for jit in jits:
        for method in methods:
            for name in group(method):
                figures = results[(name, jit)]
                row = {"method": name, "jit": jit}
                if "error" in figures:
                    row["error"] = figures["error"]
                else:
                    row.update(
                        step_s=figures["step_s"],
                        pairs_per_s=args.batch / figures["step_s"],
                        cpu_ms_per_pair=1000 * figures["cpu_s"] / args.batch,
                    )
                    base = results.get((base_of(name), jit), {})
                    if "step_s" in base:
                        row["base_ratio"] = figures["step_s"] / base["step_s"]
                        row["base_ratio_cpu"] = figures["cpu_s"] / base["cpu_s"]
                rows.append(row)

    print()
    print(f"Training throughput, pairs/s (one pair = 2 views), best of {args.repeats} runs of {args.steps} steps;")
    print(machine_line())
    print("CPU = process CPU time (all cores) per pair; x base = step time over the base row's, same jit:")
    print("  +recon over its method, ciper/stl/essl over simclr, sie over vicreg.")
    header = ["method", "jit", "pairs/s", "ms CPU/pair", "x base", "x base CPU"]
    widths = [14, 5, 9, 11, 7, 11]
    print("| " + " | ".join(f"{h:<{w}}" for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        if "error" in row:
            cells = [row["method"], "on" if row["jit"] else "off", f"failed: {row['error']}", "", "", ""]
        else:
            cells = [
                row["method"],
                "on" if row["jit"] else "off",
                f"{row['pairs_per_s']:.2f}",
                f"{row['cpu_ms_per_pair']:.1f}",
                f"{row['base_ratio']:.2f}" if "base_ratio" in row else "",
                f"{row['base_ratio_cpu']:.2f}" if "base_ratio_cpu" in row else "",
            ]
        print("| " + " | ".join(f"{c:<{w}}" for c, w in zip(cells, widths)) + " |")
    for suffix, target, what in ((RECON, 1.3, "recon x"), ("stl", 1.25, "STL x SimCLR (official PyTorch: 1.25)")):
        found = [r for r in rows if r["method"].endswith(suffix) and "base_ratio" in r]
        over = [f"{r['method']} (jit {'on' if r['jit'] else 'off'})" for r in found if r["base_ratio"] > target]
        if found:
            print(f"target {what} <= {target}: " + ("met" if not over else f"NOT met for {', '.join(over)}"))
    print(f"total {wall:.0f} s")

    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        config.update(methods=methods, jit=jits, feature_dim=feature_dim, cpu_count=os.cpu_count())
        config.update(tensorflow=tf.__version__, keras=keras.__version__)
        with open(args.json, "w") as f:
            json.dump({"config": config, "rows": rows, "wall_s": wall}, f, indent=2)


if __name__ == "__main__":
    main()
