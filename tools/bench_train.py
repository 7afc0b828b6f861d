"""Training throughput of every method, per precision (float32, mixed bfloat16) and jit setting; and end to end.

**Step mode (the default).** Each row is one training step (`model.train_function`, the step `fit`
runs: forward on every view, the losses, the gradients, the optimizer, the EMA target move for
BYOL and GTSA) on the CPU, for each precision of `--precision` (set with
`keras.mixed_precision.set_global_policy` before the model is built) and with
`compile(jit_compile=False)` and `compile(jit_compile=True)`. Rows are a `PairModel` on a ResNet-18
(`--backbone-stem`, `--width`) at `--size` px, batch `--batch`:

- `simclr`, `byol`, `vicreg`, `barlow` (Barlow Twins), `simsiam`: the invariance loss with its
  published heads (the layers' defaults), on the whole 512-channel representation (no split);
- `<method>+recon`: the same loss on the first half of the channels (split 256/256, scaled by
  `--width`) plus `CrossAttentionReconstruction` (reconstruct v2, query from the target, decoder
  Dense 256 and up-convolutions 128-64-32 to a 64 px target; `--decoder-dim`, `--decoder-filters`,
  `--target-size` change them; the target is the largest side <= `--target-size` that divides the
  view and is the feature grid times a power of two, e.g. 48 px at 96 px);
- `ciper`: SimCLR + `ParameterPrediction(["crop", "color"])` (CIPER's pair mode), with the
  param_specs of the `simclr` policy, on the whole representation;
- `stl`: SimCLR + `STL()` (its published heads: P_eq 512-128, g 128-128, P_t 128-128, the
  hypernetwork d -> d*d) on the whole representation, batches of the `stl` policy (aligned pairs);
- `essl`: SimCLR + `ESSL()` on the whole representation, batches of the `essl` policy (the pair
  plus one crop of half the view side in four rotations: 4 more backbone passes at 1/4 the pixels);
- `sie`: VICReg + `SIE()` on a half/half split, with a random relative rotation per pair;
- `gtsa`: `TeacherStudentModel` built from `configs/gtsa.py` by `model_from_config` (its own tiny ViT and
  its own 64 / 32 px multi-crop, 2 global + 4 local crops; `--size`, `--width` and
  `--backbone-stem` do not apply), batch `--batch` images made by `train_batches` from the
  bundled photos. Its "pairs/s" are source images/s.

"x base" is a row's step time over its base's (same precision and jit): `+recon` over the method,
`ciper`, `stl` and `essl` over `simclr`, `sie` over `vicreg` (from wall time; "x base CPU" from CPU
time). The targets it checks: the reconstruction branch at most 1.3x its method, STL at most 1.25x SimCLR.
The second table has one line per method and, for every (precision, jit) setting, the wall time
per pair and its ratio to the same method's float32 / jit-off time (below 1 = faster).

The backbone is `backbone_from_name("resnet18", stem=--backbone-stem, width=--width)`. The cifar
stem (the default: 3x3/1 conv, no max-pool, output stride 8) gives an 8x8x512 feature map at 64 px,
so the reconstruction branch has 64 tokens to cross-attend; it runs the first stage at the full
64x64, so the stages see the map sizes, and the FLOPs, of an imagenet-stem ResNet-18 at 256 px.
The imagenet stem (7x7/2 conv and max-pool, output stride 32) is STL's recipe at 96 px.

The data pipeline is left out of step mode: one batch of views (and the parameters that made them)
is made once, by the row's policy from uniform-noise uint8 images (GTSA: from the photos), and fed
again and again from `tf.data.Dataset.from_tensors(batch).repeat().prefetch(1)`. So the figures are
the model's step alone.

**End-to-end mode (`--end-to-end`).** `--config configs/stl.py` (or `--methods stl,essl`, each
naming `configs/<name>.py`) is trained as `keras-eqssl-train` trains it: `train_batches(config)`
(the real input pipeline: source, policy, parallel map, prefetch) feeds the model's compiled
training step (`model.train_function`, what `fit` calls once per step, without the callbacks),
with the model and optimizer of `model_from_config` / `optimizer_from_config`. `--size`, `--batch`,
`--width`, `--backbone-stem` and `--optimizer` override the config's `augment.size`,
`data.batch_size`, `model.width`, `model.stem` and `optim.name` (default: the config's own);
`--source` its data source (default: the config's, or `skimage_photos` where it is `threedie`).
The figure is source images per second as a user sees it in a long run: batch x steps over the
wall time of `--steps` steps pulled from a running pipeline iterator (pipeline and step overlapped
on the same cores), after `--warmup` untimed steps on it (the pipeline's start-up: making an
iterator instantiates the pipeline's functions, 1-4 s, once per run). Before it, "step alone" is
the same model's step on one repeated in-memory batch (this also traces and, with jit, compiles
the step), and "e2e / step" is the ratio of the two rates (1.0 = the pipeline costs the step
nothing). STL's reference: the official PyTorch code trains STL at 96 px, batch 64,
ResNet-18 with the ImageNet stem, full width, SGD at 32 source images/s on a 2-core CPU with
AVX-512 BF16; the target is 1.5x that, 48 images/s:

    python tools/bench_train.py --end-to-end --methods stl --size 96 --batch 64 \
        --backbone-stem imagenet --width 1 --optimizer sgd

Timing: for each model, `--warmup` steps are run untimed (the first traces the step function
and, with jit, compiles it with XLA), then `--repeats` runs of `--steps` steps; the best run is
kept. The number reported is pairs per second (a pair = the two views of one source image; views/s
is twice that) and process CPU time (all cores) per pair, which other work on the machine disturbs
less than wall time. For `+recon` rows, "recon x" is the time per step with reconstruction over the
time of the same method without it, same precision and jit. Target: recon x <= 1.3. Every table
starts with the CPU's model and whether it has the AVX-512 / bf16 instructions (without
avx512_bf16 or amx_bf16, bfloat16 math is emulated and slower than float32).

**Device mode (`--devices 1,all`).** Step mode's rows on GPUs: `1` is one device
(`OneDeviceStrategy` on the first GPU), `all` a `MirroredStrategy` over every visible GPU (with
synchronised BatchNorm in the backbone and every head, as training on several replicas), `<n>`
the first n. `--batch` is then pairs per device (each device gets the repeated batch, prefetched
to it), `--backbone` picks resnet18, resnet34 or resnet50, and every row adds images/s (source
images over all devices), views/s (every view the step encodes), ms/step, peak memory (the most
bytes TensorFlow's allocator held at once from the model's build to the last timed step,
`tf.config.experimental.get_memory_info(gpu)["peak"]` after `reset_memory_stats`, the largest
over the devices; without a GPU the process's peak RSS, so labelled) and "x 1 device" (images/s
over the one-device row's). The header names the GPU model(s) (`get_device_details`). Without a
GPU the rows run on the CPU (`--cpu-devices N` splits it into N devices for `all`), for a check
of the tool. Without `--devices` the GPUs stay hidden and everything above is unchanged.
`tools/bench_gpu.sh` runs the full GPU table (ResNet-18 and -50, 224 px, batch 128 per GPU).

Each group (a method and its `+recon`, one precision and jit setting; in end-to-end mode one
config and setting) runs in its own child process (a fresh Python and TensorFlow), so one group's
memory (a few GB per compiled step at batch 128, which the allocator keeps) does not add to the
next; `--in-process` runs them all in this process instead. A configuration that fails (e.g. an op
XLA cannot compile on the CPU, or a crashed child) prints `failed: <reason>` in its row and the
benchmark goes on.

Usage:
    python tools/bench_train.py                     # all methods, float32 and mixed_bfloat16, jit off and on
    python tools/bench_train.py --methods vicreg,simclr --no-jit --precision float32 --steps 5 --repeats 3
    python tools/bench_train.py --width 0.5 --size 32 --batch 64 --json /tmp/bench_train.json
    python tools/bench_train.py --methods stl --size 96 --backbone-stem imagenet
    python tools/bench_train.py --end-to-end --config configs/stl.py --batch 64 --optimizer sgd
    python tools/bench_train.py --devices 1,all --precision mixed_float16,mixed_bfloat16 --backbone resnet50 \
        --backbone-stem imagenet --size 224 --batch 128   # on GPUs, --batch per GPU
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if not any(a.startswith(("--devices", "--child-devices")) for a in sys.argv[1:]):
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the CPU figures, even where a GPU is present

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import keras_eqssl  # noqa: F401
except ImportError:  # run from a checkout that is not installed: `python tools/bench_train.py`
    sys.path.insert(0, ROOT)
    import keras_eqssl  # noqa: F401

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_eqssl.augment.policies import RotatedCropPolicy, stl  # noqa: E402
from keras_eqssl.augment.policies import simclr as simclr_policy  # noqa: E402
from keras_eqssl.machine import cpu_features_line, machine_line  # noqa: E402
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

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # tools/: its sibling modules
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_devices  # noqa: E402

tf.get_logger().setLevel("ERROR")

# name -> invariance loss; every one also runs "+recon". CIPER has no recon variant.
INVARIANCES = {"simclr": SimCLR, "byol": BYOL, "vicreg": VICReg, "barlow": BarlowTwins, "simsiam": SimSiam}
OBJECTIVE_ROWS = {"ciper": "simclr", "stl": "simclr", "essl": "simclr", "sie": "vicreg"}  # row -> its base row
CONFIG_ROWS = {"gtsa": "gtsa"}  # row -> configs/<file>.py it is built from (model_from_config, train_batches)
METHODS = (*INVARIANCES, *OBJECTIVE_ROWS, *CONFIG_ROWS)
ALIASES = {"barlowtwins": "barlow", "barlow_twins": "barlow"}
RECON = "+recon"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STEMS = ("cifar", "imagenet")
BACKBONES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}  # step mode's --backbone
OPTIMIZERS = ("adam", "adamw", "sgd")
# Keras runs every replica's step inside one XLA function, whose variables are on other devices.
XLA_REPLICAS_ERROR = "XLA cannot compile the step of several replicas as one function (variables on other devices)"
REFERENCE = ("float32", False)  # the setting every ratio of the settings table divides by
# STL's reference figure (the issue): the official PyTorch code, STL at 96 px, batch 64, ResNet-18
# (ImageNet stem, full width), SGD, on a 2-core CPU with AVX-512 BF16; the target is 1.5x it.
STL_REFERENCE_IMAGES_PER_S = 32.0
STL_TARGET_FACTOR = 1.5


def group(method: str) -> list[str]:
    """The rows one child process times: a method and its `+recon`, or one objective (or config) row."""
    return [method] if method in OBJECTIVE_ROWS or method in CONFIG_ROWS else [method, method + RECON]


def base_of(name: str) -> str | None:
    """The row a row's "x base" divides by."""
    return name.removesuffix(RECON) if name.endswith(RECON) else OBJECTIVE_ROWS.get(name)


def setting_name(precision: str, jit: bool) -> str:
    """`"float32/off"`, `"mixed_bfloat16/on"`: a (precision, jit) setting, as the JSON and tables name it."""
    return f"{precision}/{'on' if jit else 'off'}"


def load_config(name: str):
    """The config of `configs/<name>.py`, or of the config file at path `name`."""
    path = name if name.endswith(".py") else os.path.join(ROOT, "configs", name + ".py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config file {path}")
    from keras_eqssl.cli._config import load_config_file

    return load_config_file(path)


def row_config(name: str, args):
    """The config a config row (`gtsa`) is built from: the config file's own, with batch `--batch`."""
    config = load_config(CONFIG_ROWS[name])
    config.data.batch_size = args.batch
    return config


def config_batch(config) -> tuple[dict, dict]:
    """The first batch `train_batches(config)` makes, as NumPy arrays, and its param_specs."""
    from keras_eqssl.data.train_batches import first_batch, train_batches

    dataset, specs = train_batches(config, progress=False)
    return tf.nest.map_structure(lambda t: t.numpy(), first_batch(dataset)), specs


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


def make_data(method: str, args) -> tuple[dict, dict]:
    """The repeated batch of a group: `make_batch`, or the config's first batch for a config row."""
    if method in CONFIG_ROWS:
        return config_batch(row_config(method, args))
    return make_batch(args.batch, args.size, method=method)


def recon_target_size(size: int, requested: int, stride: int) -> int:
    """The reconstruction target side: the largest t <= `requested` (and <= `size`) that divides `size`
    and is the feature grid times a power of two (what the decoder's up-convolutions reach).

    >>> recon_target_size(64, 64, 8), recon_target_size(96, 64, 8), recon_target_size(96, 64, 32)
    (64, 48, 48)
    """
    limit = min(requested, size)
    grid = -(-size // stride)
    best, side = None, grid
    while side <= limit:
        if size % side == 0:
            best = side
        side *= 2
    return best or limit  # none fits: the objective names the problem


def synced(cls, synchronized: bool, **kwargs):
    """`cls(**kwargs)`, with `synchronized=True` (BatchNorm over all replicas) where asked and `cls` takes it."""
    from keras_eqssl.methods.registry import constructor_parameters

    if synchronized and "synchronized" in constructor_parameters(cls):
        kwargs["synchronized"] = True
    return cls(**kwargs)


def build_model(name: str, args, param_specs: dict, synchronized: bool = False):
    """The model of one row (see the module docstring); `synchronized`: BatchNorm synchronised over the
    replicas in the backbone and every head, as training on several replicas has it (`model.sync_bn`)."""
    if name in CONFIG_ROWS:
        from keras_eqssl.methods.factory import model_from_config

        return model_from_config(row_config(name, args), param_specs, synchronized=synchronized)
    extra = {"synchronized": True} if synchronized else {}
    backbone = backbone_from_name(
        args.backbone, stem=args.backbone_stem, width=args.width, fused_bn=args.batch_norm != "keras", **extra
    )
    base, recon = name.removesuffix(RECON), name.endswith(RECON)
    dim = backbone.feature_dim
    if base == "ciper":
        return PairModel(
            backbone,
            synced(SimCLR, synchronized),
            [synced(ParameterPrediction, synchronized, targets=["crop", "color"])],
            image_size=args.size,
            param_specs=param_specs,
        )
    if base in ("stl", "essl"):
        objective = synced(STL if base == "stl" else ESSL, synchronized)
        return PairModel(backbone, synced(SimCLR, synchronized), [objective], image_size=args.size)
    if base == "sie":
        split = (dim // 2, dim - dim // 2)
        return PairModel(
            backbone, synced(VICReg, synchronized), [synced(SIE, synchronized)], split=split, image_size=args.size
        )
    objectives, split = [], None
    if recon:
        split = (dim // 2, dim - dim // 2)
        objectives = [
            synced(
                CrossAttentionReconstruction,
                synchronized,
                target_size=recon_target_size(args.size, args.target_size, backbone.feature_stride),
                decoder_dim=args.decoder_dim,
                decoder_filters=args.decoder_filters,
            )
        ]
    return PairModel(backbone, synced(INVARIANCES[base], synchronized), objectives, split=split, image_size=args.size)


def make_optimizer(name: str) -> keras.optimizers.Optimizer:
    """Step mode's optimizer: Adam 1e-4 (the default), AdamW 1e-4 (weight decay 1e-6) or SGD 0.03 (momentum 0.9)."""
    if name == "sgd":
        return keras.optimizers.SGD(0.03, momentum=0.9)
    if name == "adamw":
        return keras.optimizers.AdamW(1e-4, weight_decay=1e-6)
    return keras.optimizers.Adam(1e-4)


def short_error(err: BaseException) -> str:
    """The first meaningful line of an error, at most 160 characters."""
    if "tfvariable_on_a_different_device" in str(err):  # XLA (jit on) with a MirroredStrategy of several devices
        return XLA_REPLICAS_ERROR
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Graph execution error"):  # TF's wrapper: the cause is further down
        causes = [line for line in lines if line.startswith(("Detected unsupported", "No registered", "OOM"))]
        lines = causes or lines
    text = f"{type(err).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 160 else text[:157] + "..."


def cpu_only() -> None:
    """Hides any GPU from TensorFlow (the CPU figures); a no-op once TensorFlow has started its devices."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised (main() called again in one process); CUDA_VISIBLE_DEVICES="" holds
        pass


def cpu_seconds() -> float:
    """Process CPU time (user + system, all threads) so far, at the clock's resolution."""
    return time.process_time()


class Runner:
    """One compiled model and an iterator over the repeated batch; `run(steps)` times `steps` steps.

    With a `strategy`, the model is built and compiled in its scope and every replica gets `data` (the
    batch of one device), prefetched to its device; without, the batch is fed from the host as before."""

    def __init__(self, name: str, jit: bool, args, data: dict, param_specs: dict, model=None, strategy=None):
        self.name, self.jit = name, jit
        if model is None:
            with strategy.scope() if strategy else contextlib.nullcontext():
                model = build_model(name, args, param_specs, synchronized=bool(strategy and replicas(strategy) > 1))
                model.compile(optimizer=make_optimizer(args.optimizer), jit_compile=jit)
        self.model = model
        self.model.make_train_function()
        ds = tf.data.Dataset.from_tensors(data).repeat().prefetch(1)
        if strategy is not None:
            per_device = ds
            ds = strategy.distribute_datasets_from_function(lambda _: per_device)
        self.iterator = iter(ds)

    def run(self, steps: int) -> tuple[float, float, float]:
        """(wall seconds, process CPU seconds, last loss) for `steps` training steps."""
        cpu_start, start = cpu_seconds(), time.perf_counter()
        for _ in range(steps):
            logs = self.model.train_function(self.iterator)
        loss = float(logs["loss"])  # waits for the last step
        return time.perf_counter() - start, cpu_seconds() - cpu_start, loss


def replicas(strategy) -> int:
    return strategy.num_replicas_in_sync


def views_per_image(data: dict) -> float:
    """Views the step encodes per source image, of every size: 2 for a pair, 6 for GTSA's 2 global + 4 local."""
    views = data["views"]
    batch = next(iter(views.values())).shape[0]
    return sum(int(np.prod(x.shape[:-3])) for x in views.values()) / batch


def label(name: str, precision: str, jit: bool) -> str:
    return f"{name:<14} {precision:<14} jit={str(jit):<5}"


def time_runner(runner: Runner, args, what: str, per_step: int, warmup: int | None = None, unit: str = "pairs") -> dict:
    """`warmup` (default `--warmup`) untimed steps, then the best of `--repeats` runs of `--steps` steps:
    {"step_s", "cpu_s"} per step. `per_step` `unit`s (pairs, images) are trained per step."""
    start = time.perf_counter()
    for _ in range(args.warmup if warmup is None else warmup):
        runner.run(1)
    print(f"  {what} built and warmed up in {time.perf_counter() - start:.1f} s", flush=True)
    best = [float("inf"), float("inf")]
    for r in range(args.repeats):
        seconds, cpu, loss = runner.run(args.steps)
        best = [min(best[0], seconds / args.steps), min(best[1], cpu / args.steps)]
        print(
            f"  {what} run {r + 1}: {seconds / args.steps:7.2f} s/step  {per_step * args.steps / seconds:7.1f} "
            f"{unit}/s  (CPU {1000 * cpu / (args.steps * per_step):.1f} ms/{unit[:-1]}, loss {loss:.4g})",
            flush=True,
        )
    return {"step_s": best[0], "cpu_s": best[1]}


def bench_group(
    names: list[str], jit: bool, args, data: dict, param_specs: dict, precision: str = "float32", devices=None
) -> dict:
    """Builds, warms up and times the rows of one group (a method and its +recon), one after the other,
    under the dtype policy `precision` (set before each model is built, float32 again after).

    One model at a time, so that the memory of a step (several GB at batch 128) is needed once.
    Returns name -> {"step_s", "cpu_s"} (best run, per step) or {"error"}. With `devices` (a setting
    of `--devices`: "1", "all", "<n>") each model runs under `bench_devices.strategy_for(devices)`,
    `--batch` pairs per device, and the figures add "replicas", "views_per_image", "peak_bytes" and
    "peak_what" (the peak memory from the model's build to the last timed step, see bench_devices)."""
    out = {}
    for name in names:
        runner = None
        try:
            keras.mixed_precision.set_global_policy(precision)
            strategy = bench_devices.strategy_for(devices) if devices else None
            if strategy is None:
                runner = Runner(name, jit, args, data, param_specs)
                out[name] = time_runner(runner, args, label(name, precision, jit), args.batch)
            else:
                where, n = bench_devices.strategy_devices(strategy), replicas(strategy)
                bench_devices.reset_peak(where)
                runner = Runner(name, jit, args, data, param_specs, strategy=strategy)
                out[name] = time_runner(runner, args, f"{label(name, precision, jit)} x{n}", args.batch * n)
                out[name].update(bench_devices.peak_memory(where), replicas=n, views_per_image=views_per_image(data))
        except Exception as err:  # noqa: BLE001 - a failing configuration is a row, not the end of the run
            out[name] = {"error": short_error(err)}
            print(f"  {label(name, precision, jit)} failed: {out[name]['error']}", flush=True)
        del runner
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()
        gc.collect()
    return out


def run_child(names: list[str], extra: list[str], args) -> dict:
    """This script in a fresh Python process with `extra` child options, so that every group starts with
    the memory of none before it (ResNet-18 at batch 128 holds several GB per compiled step, which the
    allocator keeps) and a crash (an XLA abort, the OOM killer) is a failed row. Its progress lines go to
    our stdout. Returns name -> figures, or name -> {"error"} for each of `names`."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "group.json")
        command = [sys.executable, os.path.abspath(__file__), *child_args(args), *extra, "--child-out", out_path]
        proc = subprocess.run(command, stdout=None, stderr=subprocess.PIPE, text=True)
        if proc.returncode == 0 and os.path.exists(out_path):
            with open(out_path) as f:
                return json.load(f)
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = f"worker exited with {proc.returncode}" + (f" ({lines[-1][:120]})" if lines else "")
        if proc.returncode in (-9, 137):
            reason += ", killed (out of memory?)"
        print(f"  {'/'.join(names)} {' '.join(extra)}: failed: {reason}", flush=True)
        return {name: {"error": reason} for name in names}


def group_in_child(names: list[str], jit: bool, args, precision: str = "float32", devices=None) -> dict:
    """`bench_group` in a fresh Python process (see `run_child`)."""
    extra = ["--child-group", ",".join(names), "--child-jit", str(int(jit)), "--child-precision", precision]
    return run_child(names, extra + (["--child-devices", devices] if devices else []), args)


def time_group(method: str, jit: bool, args, precision: str, devices: str | None = None) -> dict:
    """The figures of `method`'s group in one setting: in this process (`--in-process`) or a child's."""
    if not args.in_process:
        return group_in_child(group(method), jit, args, precision, devices)
    data, param_specs = make_data(method, args)
    return bench_group(group(method), jit, args, data, param_specs, precision, devices)


def child_args(args) -> list[str]:
    """The command-line options that set up a group, for its child process (the ones that are set)."""
    out = []
    for option in (
        "batch", "size", "width", "steps", "repeats", "warmup", "target_size", "decoder_dim", "decoder_filters",
        "backbone_stem", "optimizer", "source", "batch_norm", "backbone", "cpu_devices",
    ):  # fmt: skip
        value = getattr(args, option)
        if value is not None:
            out += ["--" + option.replace("_", "-"), str(value)]
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


def parse_precisions(text: str, parser) -> list[str]:
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item not in PRECISIONS:
            parser.error(f"unknown precision {item!r}; expected some of {', '.join(PRECISIONS)}")
        if item not in out:
            out.append(item)
    if not out:
        parser.error("--precision is empty")
    return out


def fmt(value, spec: str = ".2f") -> str:
    return "" if value is None else f"{value:{spec}}"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, each column as wide as its widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print("| " + " | ".join(f"{h:<{w}}" for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(f"{c:<{w}}" for c, w in zip(row, widths)) + " |")


def reference_setting(settings: list[tuple[str, bool]]) -> tuple[str, bool]:
    """float32 / jit off where measured, else the first setting."""
    return REFERENCE if REFERENCE in settings else settings[0]


def settings_summary(rows: list[dict], settings: list[tuple[str, bool]], per: str) -> dict:
    """method -> {"reference", "fastest", "settings": {setting: {"ms_per_<per>", "ratio"} or {"error"}}}.

    `ratio` is the setting's wall time over the reference setting's, same method (below 1 = faster);
    `cpu_ratio` the same for the process CPU time, which other work on the machine disturbs less."""
    ref = reference_setting(settings)
    key, cpu_key = f"ms_per_{per}", f"cpu_ms_per_{per}"
    out = {}
    for row in rows:
        entry = out.setdefault(row["method"], {"reference": setting_name(*ref), "settings": {}})
        name = setting_name(row["precision"], row["jit"])
        entry["settings"][name] = {"error": row["error"]} if "error" in row else {key: row[key], cpu_key: row[cpu_key]}
    for entry in out.values():
        base = entry["settings"].get(entry["reference"], {})
        timed = {s: f[key] for s, f in entry["settings"].items() if key in f}
        for figures in entry["settings"].values():
            if key in figures and key in base:
                figures["ratio"] = figures[key] / base[key]
                figures["cpu_ratio"] = figures[cpu_key] / base[cpu_key]
        entry["fastest"] = min(timed, key=timed.get) if timed else None
    return out


def print_settings_table(summary: dict, settings: list[tuple[str, bool]], per: str, title: str) -> None:
    """One line per method: the wall ms per `per` of every setting and its ratio to the reference setting."""
    ref = setting_name(*reference_setting(settings))
    print(title)
    print(machine_line())
    print(cpu_features_line())
    print(f"ms/{per} = wall time per {per}; x = that over the same method's {ref} (below 1 = faster);")
    print(f"x CPU = the same for the process CPU time per {per} (less disturbed by other work on the machine).")
    names = [setting_name(*s) for s in settings]
    others = [n for n in names if n != ref]
    header = ["method", *(f"{n} ms/{per}" for n in names), *(f"x {n}" for n in others)]
    header += [*(f"x CPU {n}" for n in others), "fastest"]
    lines = []
    for method, entry in summary.items():
        cells = [method]
        for n in names:
            f = entry["settings"].get(n, {})
            cells.append("failed" if "error" in f else fmt(f.get(f"ms_per_{per}"), ".1f"))
        cells += [fmt(entry["settings"].get(n, {}).get("ratio")) for n in others]
        cells += [fmt(entry["settings"].get(n, {}).get("cpu_ratio")) for n in others]
        lines.append([*cells, entry["fastest"] or ""])
    print_table(header, lines)


# --- device mode (--devices) -----------------------------------------------------------------------


def model_line(args, feature_dim: int) -> str:
    """The step's model and data, e.g. "ResNet-50 (imagenet stem, fused BN, width 1.0, 2048 channels), 224 px"."""
    bn = "Keras" if args.batch_norm == "keras" else "fused"
    return (
        f"{BACKBONES[args.backbone]} ({args.backbone_stem} stem, {bn} BN, width {args.width}, {feature_dim} channels), "
        f"{args.size} px, {args.optimizer}"
    )


def device_rows(results: dict, keys: list[tuple], args) -> list[dict]:
    """One row per (devices, name, precision, jit): images/s (source images, all devices), views/s,
    ms per step, peak memory, x base (as the CPU table) and x 1 device (images/s over the `1` row's)."""
    rows = []
    for devices, name, precision, jit in keys:
        figures = results[(devices, name, precision, jit)]
        row = {"method": name, "devices": devices, "precision": precision, "jit": jit}
        if "error" in figures:
            rows.append({**row, "error": figures["error"]})
            continue
        batch = args.batch * figures["replicas"]
        row.update(
            replicas=figures["replicas"], batch=batch, step_s=figures["step_s"],
            images_per_s=batch / figures["step_s"], views_per_s=batch * figures["views_per_image"] / figures["step_s"],
            ms_per_pair=1000 * figures["step_s"] / batch, cpu_ms_per_pair=1000 * figures["cpu_s"] / batch,
            peak_bytes=figures["peak_bytes"], peak_what=figures["peak_what"],
        )  # fmt: skip
        base = results.get((devices, base_of(name), precision, jit), {})
        if "step_s" in base:
            row["base_ratio"] = figures["step_s"] / base["step_s"]
        one = results.get(("1", name, precision, jit), {})
        if "step_s" in one and devices != "1":
            row["x_one_device"] = row["images_per_s"] / (args.batch / one["step_s"])
        rows.append(row)
    return rows


def print_device_table(rows: list[dict], args) -> None:
    """The per-row table of device mode (see `device_rows`)."""
    peak = next((r["peak_what"] for r in rows if "peak_what" in r), "peak memory")
    header = ["method", "devices", "precision", "jit", "batch", "images/s", "views/s", "ms/step"]
    header += [f"{peak} GiB", "x base", "x 1 device"]
    lines = []
    for row in rows:
        devices = row["devices"] + (f" ({row['replicas']})" if row["devices"] == "all" and "replicas" in row else "")
        cells = [row["method"], devices, row["precision"], "on" if row["jit"] else "off"]
        if "error" in row:
            lines.append([*cells, "", f"failed: {row['error']}", "", "", "n/a", "", ""])
            continue
        lines.append([
            *cells, str(row["batch"]), f"{row['images_per_s']:.1f}", f"{row['views_per_s']:.1f}",
            f"{1000 * row['step_s']:.1f}", bench_devices.memory_cell(row), fmt(row.get("base_ratio")),
            fmt(row.get("x_one_device")),
        ])  # fmt: skip
    print_table(header, lines)


def main_devices(args, parser, methods: list[str], precisions: list[str], jits: list[bool]) -> dict:
    """Step mode on one device and on all (`--devices`): the per-row table with images/s and peak memory."""
    try:
        settings = bench_devices.parse_devices(args.devices)
    except ValueError as err:
        parser.error(str(err))
    if args.cpu_devices is not None and args.cpu_devices < 1:
        parser.error("--cpu-devices must be positive")
    gpu_line = bench_devices.gpu_line()
    if args.in_process:
        try:
            bench_devices.split_cpu(args.cpu_devices or 1)
        except RuntimeError as err:
            parser.error(f"--cpu-devices {args.cpu_devices} with --in-process: {err}")
    else:
        cpu_only()  # this process computes nothing on the GPUs: every group's child has them to itself
    feature_dim = backbone_from_name(args.backbone, stem=args.backbone_stem, width=args.width).feature_dim
    print(f"{machine_line()}; TF {tf.__version__}, Keras {keras.__version__}", flush=True)
    print(gpu_line, flush=True)
    print(cpu_features_line(), flush=True)
    print(
        f"{model_line(args, feature_dim)}; batch {args.batch} pairs per device; devices {', '.join(settings)}; "
        f"precision {', '.join(precisions)}; warm-up {args.warmup} + timed {args.steps} steps, best of {args.repeats}; "
        "data: one repeated in-memory batch per device (no pipeline time).",
        flush=True,
    )
    keys = [(d, n, p, j) for d in settings for p in precisions for j in jits for m in methods for n in group(m)]
    results, start = {}, time.perf_counter()
    for devices in settings:
        for precision in precisions:
            for jit in jits:
                for method in methods:
                    figures = time_group(method, jit, args, precision, devices)
                    results.update({(devices, name, precision, jit): figures[name] for name in group(method)})
    wall = time.perf_counter() - start
    rows = device_rows(results, keys, args)

    print()
    print(f"Training throughput per device setting, best of {args.repeats} runs of {args.steps} steps;")
    print(machine_line())
    print(gpu_line)
    print(f"{model_line(args, feature_dim)}; batch = {args.batch} pairs per device x devices.")
    print("images/s = source images (pairs) per second over all devices; views/s = every view the step encodes;")
    print("ms/step = wall time of one step; peak = the most memory in use at once from the model's build to the")
    print("last timed step (GPU: TensorFlow's allocator, the largest over the devices; CPU: the process's peak RSS);")
    print("x base = step time over the base row's (as the CPU table); x 1 device = images/s over the 1-device row's.")
    print_device_table(rows, args)
    summaries = {}
    for devices in settings:
        subset = [r for r in rows if r["devices"] == devices]
        summaries[devices] = settings_summary(subset, [(p, j) for p in precisions for j in jits], "pair")
        print()
        print_settings_table(
            summaries[devices], [(p, j) for p in precisions for j in jits], "pair",
            f"Per method and setting, devices {devices} ({args.size} px, batch {args.batch} per device):",
        )  # fmt: skip
    print(f"total {wall:.0f} s")
    out = {"rows": rows, "settings": summaries, "wall_s": wall, "gpu": gpu_line}
    if args.json:
        write_json(
            args, out, methods=methods, precisions=precisions, jit=jits, devices=settings, feature_dim=feature_dim
        )
    return out


# --- end-to-end mode ---------------------------------------------------------------------------


def e2e_config(name: str, args):
    """The config of `name` (configs/<name>.py or a path) with the command line's overrides (see the docstring)."""
    config = load_config(name)
    if args.source:
        config.data.source = args.source
    elif config.data.source == "threedie":
        config.data.source = "skimage_photos"  # the bundled photos: nothing to render or download
    if args.size is not None:
        config.augment.size = args.size
        config.augment.essl.size = max(args.size // 2, 8)  # E-SSL's crop and GTSA's local crops: half the view
        config.augment.gtsa.local_size = max(args.size // 2, 8)
    if args.batch is not None:
        config.data.batch_size = args.batch
    if args.width is not None:
        config.model.width = args.width
    if args.backbone_stem is not None:
        config.model.stem = args.backbone_stem
    if args.optimizer is not None:
        config.optim.name = args.optimizer
    if args.batch_norm is not None:
        config.model.fused_bn = args.batch_norm == "fused"
    return config


def describe_config(config) -> str:
    """One line: what an end-to-end row trains (source, policy, sizes, batch, backbone, optimizer)."""
    m = config.model
    bn = "fused BN" if m.get("fused_bn", True) else "Keras BN"
    backbone = m.backbone + (f" ({m.stem} stem, width {m.width}, {bn})" if m.backbone.startswith("resnet") else "")
    views = f"{config.augment.size} px"
    if config.augment.policy == "gtsa":
        views += f" + {config.augment.gtsa.num_local} local crops of {config.augment.gtsa.local_size} px"
    elif config.augment.policy == "essl":
        views += f" + 4 rotations of a {config.augment.essl.size} px crop"
    augmix = " + AugMix" if config.augment.policy == "stl" and config.augment.stl.augmix else ""
    return (
        f"{config.data.source} ({config.data.image_size} px sources), policy {config.augment.policy}{augmix}, "
        f"{views}, batch {config.data.batch_size} images, {backbone}, {config.optim.name}"
    )


def e2e_name(item: str) -> str:
    return os.path.splitext(os.path.basename(item))[0] if item.endswith(".py") else item


def bench_end_to_end(name: str, jit: bool, args, precision: str) -> dict:
    """One config, one setting: the model's step alone on its first batch, then `train_batches` feeding it.

    Returns {"step_s", "cpu_s", "alone_step_s", "alone_cpu_s", "batch"} (best runs, per step) or {"error"}."""
    from keras_eqssl.data.train_batches import first_batch, train_batches
    from keras_eqssl.methods.factory import model_from_config, optimizer_from_config

    what = label(e2e_name(name), precision, jit)
    try:
        config = e2e_config(name, args)
        config.train.precision, config.train.jit_compile = precision, jit
        keras.mixed_precision.set_global_policy(precision)
        dataset, specs = train_batches(config, progress=False)
        model = model_from_config(config, specs)
        model.compile(optimizer=optimizer_from_config(config), jit_compile=jit)
        batch = config.data.batch_size
        # The step alone first (it traces the step function and, with jit, compiles it), on the first batch.
        runner = Runner(name, jit, args, first_batch(dataset), specs, model=model)
        alone = time_runner(runner, args, what + " step alone", batch, warmup=max(args.warmup, 1), unit="images")
        # Then the pipeline: a fresh iterator (its threads start at the first batch), warm-up steps untimed
        # (the pipeline's start-up and any retrace), then the timed steps on the same, running iterator.
        runner.iterator = iter(dataset)
        e2e = time_runner(runner, args, what + " end to end", batch, warmup=max(args.warmup, 1), unit="images")
        return {
            "step_s": e2e["step_s"], "cpu_s": e2e["cpu_s"], "alone_step_s": alone["step_s"],
            "alone_cpu_s": alone["cpu_s"], "batch": batch,
        }  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a failing configuration is a row, not the end of the run
        print(f"  {what} failed: {short_error(err)}", flush=True)
        return {"error": short_error(err)}
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()
        gc.collect()


def main_end_to_end(args, parser, precisions: list[str], jits: list[bool]) -> dict:
    items = [c.strip() for c in (args.config or "").split(",") if c.strip()]
    items += [m.strip() for m in (args.methods or "").split(",") if m.strip()]
    if not items:
        parser.error("--end-to-end needs --config configs/<name>.py or --methods <config names>")
    for item in items:
        path = item if item.endswith(".py") else os.path.join(ROOT, "configs", item + ".py")
        if not os.path.isfile(path):
            parser.error(f"no config file {path} (--end-to-end trains configs/<name>.py)")
    for option in ("size", "batch", "steps", "repeats"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be positive")
    if args.width is not None and args.width <= 0:
        parser.error("--width must be > 0")
    args.steps = args.steps or 3
    args.repeats = args.repeats or 1
    args.warmup = 1 if args.warmup is None else args.warmup
    descriptions = {e2e_name(item): describe_config(e2e_config(item, args)) for item in items}
    print(
        f"{machine_line()}; TF {tf.__version__}, Keras {keras.__version__}; end to end: train_batches -> train_function, "
        f"warm-up {max(args.warmup, 1)} step(s) + timed {args.steps} steps, best of {args.repeats}.",
        flush=True,
    )
    print(cpu_features_line(), flush=True)
    for name, text in descriptions.items():
        print(f"  {name}: {text}", flush=True)

    cpu_only()
    results, start = {}, time.perf_counter()
    for precision in precisions:
        for jit in jits:
            for item in items:
                if args.in_process:
                    figures = bench_end_to_end(item, jit, args, precision)
                else:
                    extra = ["--child-e2e", item, "--child-jit", str(int(jit)), "--child-precision", precision]
                    figures = run_child([item], extra, args)[item]
                results[(item, precision, jit)] = figures
    wall = time.perf_counter() - start

    rows = []
    for item in items:
        for precision in precisions:
            for jit in jits:
                figures = results[(item, precision, jit)]
                row = {"method": e2e_name(item), "precision": precision, "jit": jit}
                if "error" in figures:
                    row["error"] = figures["error"]
                else:
                    batch = figures["batch"]
                    row.update(
                        batch=batch,
                        step_s=figures["step_s"],
                        images_per_s=batch / figures["step_s"],
                        ms_per_image=1000 * figures["step_s"] / batch,
                        cpu_ms_per_image=1000 * figures["cpu_s"] / batch,
                        step_alone_images_per_s=batch / figures["alone_step_s"],
                        e2e_over_step=figures["alone_step_s"] / figures["step_s"],
                    )
                rows.append(row)
    settings = [(p, j) for p in precisions for j in jits]
    summary = settings_summary(rows, settings, "image")
    ref = setting_name(*reference_setting(settings))

    print()
    print(f"End-to-end training throughput, source images/s (train_batches feeding the training step), best of {args.repeats} "
          f"runs of {args.steps} steps;")  # fmt: skip
    print(machine_line())
    print(cpu_features_line())
    for name, text in descriptions.items():
        print(f"{name}: {text}")
    print("step alone = the same model's step on one repeated in-memory batch; e2e / step = end-to-end images/s")
    print(f"over step-alone images/s (1.00 = the pipeline costs nothing); x = ms/image over the {ref} setting's.")
    header = ["method", "precision", "jit", "images/s", "ms CPU/image", "step alone images/s", "e2e / step", "x"]
    lines = []
    for row in rows:
        jit = "on" if row["jit"] else "off"
        if "error" in row:
            lines.append([row["method"], row["precision"], jit, f"failed: {row['error']}", "", "", "", ""])
            continue
        ratio = summary[row["method"]]["settings"][setting_name(row["precision"], row["jit"])].get("ratio")
        lines.append([
            row["method"], row["precision"], jit, f"{row['images_per_s']:.2f}", f"{row['cpu_ms_per_image']:.1f}",
            f"{row['step_alone_images_per_s']:.2f}", f"{row['e2e_over_step']:.2f}", fmt(ratio),
        ])  # fmt: skip
    print_table(header, lines)
    print()
    print_settings_table(summary, settings, "image", "End to end, per setting:")
    reference = None
    for row in rows:
        if row["method"] == "stl" and "images_per_s" in row:
            if reference is None or row["images_per_s"] > reference["images_per_s"]:
                reference = row
    if reference is not None:
        target = STL_REFERENCE_IMAGES_PER_S * STL_TARGET_FACTOR
        config = e2e_config(next(i for i in items if e2e_name(i) == "stl"), args)
        same = (config.augment.size, config.data.batch_size, config.model.stem, config.model.width, config.optim.name)
        verdict = "met" if reference["images_per_s"] >= target else "NOT met"
        if same != (96, 64, "imagenet", 1.0, "sgd"):
            verdict = "not comparable: the reference setting is 96 px, batch 64, imagenet stem, width 1, sgd"
        where = setting_name(reference["precision"], reference["jit"])
        print(
            f"STL reference: official PyTorch code, 32 images/s on a 2-core AVX-512 BF16 CPU; target 1.5x = "
            f"{target:.0f} images/s. Best here: {reference['images_per_s']:.2f} images/s ({where}, "
            f"{reference['images_per_s'] / STL_REFERENCE_IMAGES_PER_S:.2f}x the reference): {verdict}"
        )
    print(f"total {wall:.0f} s")
    out = {"rows": rows, "settings": summary, "wall_s": wall, "configs": descriptions}
    if args.json:
        write_json(args, out, items=items, precisions=precisions, jits=jits)
    return out


def write_json(args, out: dict, **config) -> None:
    from keras_eqssl.machine import bf16_support, cpu_model

    settings = {k: v for k, v in vars(args).items() if k != "json" and not k.startswith("child_")}
    settings.update(config, cpu_count=os.cpu_count(), tensorflow=tf.__version__, keras=keras.__version__)
    cpu = {"model": cpu_model(), "cores": os.cpu_count(), "flags": bf16_support()}
    with open(args.json, "w") as f:
        json.dump({"config": settings, "cpu": cpu, **out}, f, indent=2)


# --- command line ------------------------------------------------------------------------------


def step_defaults(args) -> None:
    """Step mode's defaults for the options end-to-end mode takes from the config."""
    for option, value in (
        ("batch", 128), ("size", 64), ("width", 1.0), ("backbone_stem", "cifar"), ("optimizer", "adam"), ("backbone", "resnet18"),
        ("steps", 3), ("repeats", 2), ("warmup", 1),
    ):  # fmt: skip
        if getattr(args, option) is None:
            setattr(args, option, value)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", help=f"comma-separated (default {','.join(METHODS)}); end to end: config names")
    parser.add_argument("--end-to-end", action="store_true", help="train_batches feeding the step, source images/s")
    parser.add_argument("--config", help="end to end: config file(s), comma-separated (e.g. configs/stl.py)")
    parser.add_argument("--source", help="end to end: config.data.source (default the config's; threedie -> photos)")
    parser.add_argument(
        "--precision", default="float32,mixed_bfloat16", help=f"comma-separated, of {', '.join(PRECISIONS)}"
    )
    parser.add_argument("--batch", type=int, help="pairs (source images) per step (default 128; e2e: the config's)")
    parser.add_argument("--size", type=int, help="view side in px, e.g. 32, 64, 96 (default 64; e2e: the config's)")
    parser.add_argument("--width", type=float, help="ResNet-18 width multiplier (default 1.0; e2e: the config's)")
    parser.add_argument("--backbone-stem", choices=STEMS, help="ResNet-18 stem (default cifar; e2e: the config's)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam 1e-4 (e2e: the config's, its lr)")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 3)")
    parser.add_argument("--repeats", type=int, help="timed runs of each; best is kept (default 2; e2e 1)")
    parser.add_argument("--warmup", type=int, help="untimed steps first, incl. tracing/XLA (default 1)")
    parser.add_argument("--target-size", type=int, default=64, help="recon target side, at most (default 64)")
    parser.add_argument("--decoder-dim", type=int, default=256, help="recon decoder Dense width (default 256)")
    parser.add_argument(
        "--decoder-filters", type=int, default=None, help="first up-conv's channels, halved each step (default dim/2)"
    )
    parser.add_argument(
        "--batch-norm",
        choices=("fused", "keras"),
        help="the ResNet's BatchNorm: fused (FusedBatchNormalization, the default) or keras (unfused ops)",
    )
    parser.add_argument("--backbone", choices=BACKBONES, help="step mode's ResNet (default resnet18)")
    parser.add_argument(
        "--devices",
        help="step mode on devices: comma-separated settings, 1 (one GPU), all (MirroredStrategy over every GPU) "
        "or a count, e.g. 1,all; --batch is then per device, and rows add views/s and peak memory. Without GPUs "
        "the rows run on the CPU (all: over --cpu-devices logical CPUs). Default: the CPU table, GPUs hidden",
    )
    parser.add_argument(
        "--cpu-devices", type=int, help="with --devices and no GPU: split the CPU into this many devices"
    )
    jit_group = parser.add_mutually_exclusive_group()
    jit_group.add_argument("--no-jit", action="store_true", help="only jit_compile=False")
    jit_group.add_argument("--jit-only", action="store_true", help="only jit_compile=True")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    parser.add_argument("--in-process", action="store_true", help="run every group in this process (no children)")
    parser.add_argument("--child-group", help=argparse.SUPPRESS)  # internal: the child process of one group
    parser.add_argument("--child-e2e", help=argparse.SUPPRESS)
    parser.add_argument("--child-jit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--child-devices", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_group or args.child_e2e:
        if args.child_devices:
            bench_devices.split_cpu(args.cpu_devices or 1)
        else:
            cpu_only()
        if args.child_e2e:
            out = {args.child_e2e: bench_end_to_end(args.child_e2e, bool(args.child_jit), args, args.child_precision)}
        else:
            step_defaults(args)
            names = args.child_group.split(",")
            data, param_specs = make_data(names[0], args)
            out = bench_group(
                names, bool(args.child_jit), args, data, param_specs, args.child_precision, args.child_devices
            )
        with open(args.child_out, "w") as f:
            json.dump(out, f)
        return out
    precisions = parse_precisions(args.precision, parser)
    jits = [False] if args.no_jit else [True] if args.jit_only else [False, True]
    if args.end_to_end:
        if args.devices or args.backbone or args.cpu_devices:
            parser.error("--devices, --cpu-devices and --backbone are for step mode (end to end: the config's)")
        return main_end_to_end(args, parser, precisions, jits)
    if args.config or args.source:
        parser.error("--config and --source are for --end-to-end")
    step_defaults(args)
    methods = parse_methods(args.methods or ",".join(METHODS), parser)
    if min(args.batch, args.size, args.steps, args.repeats, args.target_size, args.decoder_dim) < 1:
        parser.error("--batch, --size, --steps, --repeats, --target-size and --decoder-dim must be positive")
    if args.warmup < 0 or args.width <= 0:
        parser.error("--warmup must be >= 0 and --width > 0")
    if args.devices:
        return main_devices(args, parser, methods, precisions, jits)
    if args.cpu_devices is not None:
        parser.error("--cpu-devices is for --devices")

    cpu_only()
    feature_dim = backbone_from_name(args.backbone, stem=args.backbone_stem, width=args.width).feature_dim
    print(
        f"{machine_line()}; TF {tf.__version__}, Keras {keras.__version__}; {BACKBONES[args.backbone]} ({args.backbone_stem} stem, "
        f"{'Keras' if args.batch_norm == 'keras' else 'fused'} BN, "
        f"width {args.width}, {feature_dim} channels), {args.size} px, batch {args.batch}, {args.optimizer}; "
        f"precision {', '.join(precisions)}; warm-up {args.warmup} + timed {args.steps} steps, best of "
        f"{args.repeats}; data: one repeated in-memory batch (no pipeline time).",
        flush=True,
    )
    print(cpu_features_line(), flush=True)
    results = {}
    start = time.perf_counter()
    for precision in precisions:
        for jit in jits:
            for method in methods:
                figures = time_group(method, jit, args, precision)
                for name in group(method):
                    results[(name, precision, jit)] = figures[name]
    wall = time.perf_counter() - start

    rows = []
    for precision in precisions:
        for jit in jits:
            for method in methods:
                for name in group(method):
                    figures = results[(name, precision, jit)]
                    row = {"method": name, "precision": precision, "jit": jit}
                    if "error" in figures:
                        row["error"] = figures["error"]
                    else:
                        row.update(
                            step_s=figures["step_s"],
                            pairs_per_s=args.batch / figures["step_s"],
                            ms_per_pair=1000 * figures["step_s"] / args.batch,
                            cpu_ms_per_pair=1000 * figures["cpu_s"] / args.batch,
                        )
                        base = results.get((base_of(name), precision, jit), {})
                        if "step_s" in base:
                            row["base_ratio"] = figures["step_s"] / base["step_s"]
                            row["base_ratio_cpu"] = figures["cpu_s"] / base["cpu_s"]
                    rows.append(row)
    settings = [(p, j) for p in precisions for j in jits]
    summary = settings_summary(rows, settings, "pair")
    for row in rows:
        figures = summary[row["method"]]["settings"][setting_name(row["precision"], row["jit"])]
        if "ratio" in figures:
            row["ratio"], row["cpu_ratio"] = figures["ratio"], figures["cpu_ratio"]

    print()
    print(f"Training throughput, pairs/s (one pair = 2 views), best of {args.repeats} runs of {args.steps} steps;")
    print(machine_line())
    print(cpu_features_line())
    print("CPU = process CPU time (all cores) per pair; x base = step time over the base row's, same precision")
    print("and jit: +recon over its method, ciper/stl/essl over simclr, sie over vicreg.")
    header = ["method", "precision", "jit", "pairs/s", "ms CPU/pair", "x base", "x base CPU"]
    lines = []
    for row in rows:
        cells = [row["method"], row["precision"], "on" if row["jit"] else "off"]
        if "error" in row:
            lines.append([*cells, f"failed: {row['error']}", "", "", ""])
        else:
            lines.append([
                *cells, f"{row['pairs_per_s']:.2f}", f"{row['cpu_ms_per_pair']:.1f}",
                fmt(row.get("base_ratio")), fmt(row.get("base_ratio_cpu")),
            ])  # fmt: skip
    print_table(header, lines)
    for suffix, target, what in ((RECON, 1.3, "recon x"), ("stl", 1.25, "STL x SimCLR")):
        found = [r for r in rows if r["method"].endswith(suffix) and "base_ratio" in r]
        over = [
            f"{r['method']} ({r['precision']}, jit {'on' if r['jit'] else 'off'})"
            for r in found
            if r["base_ratio"] > target
        ]
        if found:
            print(f"target {what} <= {target}: " + ("met" if not over else f"NOT met for {', '.join(over)}"))
    print()
    print_settings_table(summary, settings, "pair", f"Per method and setting ({args.size} px, batch {args.batch}):")
    print(f"total {wall:.0f} s")

    out = {"rows": rows, "settings": summary, "wall_s": wall}
    if args.json:
        write_json(args, out, methods=methods, precisions=precisions, jit=jits, feature_dim=feature_dim)
    return out


if __name__ == "__main__":
    main()
