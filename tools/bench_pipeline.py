"""What the input pipeline supplies and what the training step consumes, per augmentation policy, in source images/s.

One row per policy a method trains on, each built from its config:

- `simclr`: two views by the SimCLR policy (`configs/simclr.py` on the bundled photos), SimCLR;
- `stl`: STL's aligned pairs (`configs/stl.py`), SimCLR + STL;
- `stl_augmix`: the same with AugMix in the aligned part (`configs/stl_augmix.py`);
- `essl`: the SimCLR pair plus one crop of half the view side in four rotations (`configs/essl.py`),
  SimCLR + E-SSL;
- `gtsa`: GTSA's multi-crop, 2 global + 4 local crops each turned by k x 90 degrees
  (`configs/gtsa.py` as it is: its tiny ViT at 64 / 32 px; only `--batch` applies), `TeacherStudentModel`.

The ResNet rows use a realistic default setting: views of `--size` 96 px, batch `--batch` 64,
ResNet-18 with the `--backbone-stem` imagenet stem at `--width` 1 (STL's recipe); the sources are
the config's (random crops of the photos at `data.image_size`, 128 px).

- **Supply**: `train_batches(config)` exactly as training builds it (the source: crops of the
  photos, which are held in memory, decoded once; the policy on each batch in a
  `map(num_parallel_calls=AUTOTUNE)`; `prefetch(AUTOTUNE)`), iterated with nothing else running:
  a fresh iterator, `--warmup` batches untimed (its start-up), then `--batches` batches timed;
  best of `--repeats`. Also its process CPU time per image (all cores).
- **Consume**: the config's model and optimizer (`model_from_config`, `optimizer_from_config`)
  training on one repeated in-memory batch, the step alone (`tools/bench_train.py`'s step mode):
  `--step-warmup` steps untimed (tracing; with jit, XLA), then `--steps` timed; best of `--repeats`;
  for each of `--jit` (off, on), in float32 (`--precision`).
- **Ratio** = supply / consume. Target: >= 2 for every policy, so that the pipeline keeps up with
  the step while using at most about half of the machine. "pipeline CPU share" is the pipeline's
  CPU time per image over the pipeline's plus the step's: the share of the cores it takes in a run.

**On disk** (`--disk-images N`, or `--folder DIR`): the source is an image folder instead of the
photos: N JPEGs of `--disk-side` px (default 288; random crops of the photos, quality 90) written to
a temporary folder first, read through `image_folder` exactly as training reads one (`data.image_size`
from `--image-size`, then the policy's views of `--size`). Nothing caches them: every image costs a
file read, a JPEG decode and a resize, as for a data set larger than RAM. The OS page cache may
still hold the freshly written files (dropping it needs root), so the supply figure is read from
memory + decode + resize, not disk bandwidth: a bound on what a slow disk allows, not a disk test.

Each policy runs in its own child process (`--in-process`: all in this one). Absolute figures move
with other work on the machine; the ratios of one run are what counts.

Usage:
    python tools/bench_pipeline.py                                  # every policy, 96 px, batch 64, jit off and on
    python tools/bench_pipeline.py --policies stl,gtsa --jit off --batches 4 --steps 1
    python tools/bench_pipeline.py --size 32 --batch 16 --width 0.25 --json /tmp/bench_pipeline.json
    python tools/bench_pipeline.py --disk-images 2000 --image-size 256 --size 224 --batch 16 --jit off  # 224 px, on disk
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_train, next to this file

import bench_train  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_eqssl.machine import bf16_support, cpu_features_line, cpu_model, machine_line  # noqa: E402

# policy -> (config file, what its batches are)
POLICIES = {
    "simclr": ("simclr", "2 views (SimCLR policy)"),
    "stl": ("stl", "2 views, aligned pairs (STL policy)"),
    "stl_augmix": ("stl_augmix", "2 views, aligned pairs + AugMix"),
    "essl": ("essl", "2 views + 4 rotations of a crop (E-SSL)"),
    "gtsa": ("gtsa", "2 global + 4 local rotated crops (GTSA)"),
}
OWN_SIZES = ("gtsa",)  # policies kept at their config's view sizes and backbone
TARGET = 2.0


def policy_config(name: str, args):
    """The config of a policy's row: its config file with the row's settings (see the docstring)."""
    config = bench_train.load_config(POLICIES[name][0])
    if config.data.source == "threedie":
        config.data.source = "skimage_photos"  # the policy's views of the bundled photos
    if args.folder:  # an image folder on disk, read and decoded every epoch (no cache)
        config.data.source, config.data.root = "image_folder", args.folder
        config.data.decode_check_limit = 0  # no decode-everything check before the timing
    config.data.batch_size = args.batch
    if args.image_size:
        config.data.image_size = args.image_size
    if name not in OWN_SIZES:
        config.augment.size = args.size
        config.augment.essl.size = max(args.size // 2, 8)
        config.model.width = args.width
        config.model.stem = args.backbone_stem
    return config


def write_jpeg_folder(root: str, count: int, side: int, seed: int = 0) -> int:
    """Writes `count` JPEGs (quality 90) of `side` px, random crops of the bundled photos, into `root`
    (a flat, unlabelled image folder); returns their total size in bytes."""
    from keras_eqssl.data.photos import skimage_photos

    os.makedirs(root, exist_ok=True)
    total = 0
    for i, element in enumerate(skimage_photos(image_size=side, num_images=count, seed=seed)):
        data = tf.io.encode_jpeg(element["image"], quality=90).numpy()
        with open(os.path.join(root, f"{i:06d}.jpg"), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def folder_line(folder: str) -> str:
    """What the on-disk source is, and what its supply figure measures."""
    names = [e for e in os.scandir(folder) if e.is_file()]
    megabytes = sum(e.stat().st_size for e in names) / 2**20
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"source: {len(names)} JPEG files, {megabytes:.0f} MB, in {folder}, listed once and read, decoded and resized "
        f"every time (no tf.data cache: each image costs a file read and a decode, as for a data set larger than "
        f"RAM); the files may sit in the OS page cache ({ram:.0f} GiB RAM), so disk bandwidth is not measured"
    )


def describe(name: str, config) -> str:
    return f"{name}: {POLICIES[name][1]}; {bench_train.describe_config(config)}"


def measure_supply(dataset, batch: int, args) -> dict:
    """Source images/s the pipeline delivers with nothing consuming but this loop (best of `--repeats`)."""
    best = {"images_per_s": 0.0}
    for _ in range(args.repeats):
        iterator = iter(dataset)
        for _ in range(args.warmup):
            next(iterator)
        cpu_start, start = bench_train.cpu_seconds(), time.perf_counter()
        for _ in range(args.batches):
            next(iterator)
        seconds, cpu = time.perf_counter() - start, bench_train.cpu_seconds() - cpu_start
        images = batch * args.batches
        if images / seconds > best["images_per_s"]:
            best = {"images_per_s": images / seconds, "cpu_ms_per_image": 1000 * cpu / images}
        del iterator
    return best


def measure_consume(config, specs, sample: dict, jit: bool, args) -> dict:
    """Source images/s the config's model trains on one repeated in-memory batch (best of `--repeats`)."""
    from keras_eqssl.methods.factory import model_from_config, optimizer_from_config

    keras.mixed_precision.set_global_policy(args.precision)
    runner = None
    try:
        model = model_from_config(config, specs)
        model.compile(optimizer=optimizer_from_config(config), jit_compile=jit)
        runner = bench_train.Runner(model.name, jit, args, sample, specs, model=model)
        what = bench_train.label(model.name, args.precision, jit)
        steps = argparse.Namespace(steps=args.steps, repeats=args.repeats, warmup=args.step_warmup)
        figures = bench_train.time_runner(runner, steps, what, config.data.batch_size, unit="images")
        batch = config.data.batch_size
        return {"images_per_s": batch / figures["step_s"], "cpu_ms_per_image": 1000 * figures["cpu_s"] / batch}
    except Exception as err:  # noqa: BLE001 - a failing configuration is a cell, not the end of the run
        print(f"  {config.model.backbone} jit={jit}: failed: {bench_train.short_error(err)}", flush=True)
        return {"error": bench_train.short_error(err)}
    finally:
        del runner
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()
        gc.collect()


def bench_policy(name: str, jits: list[bool], args) -> dict:
    """Supply and consume of one policy: {"supply": {...}, "consume": {"off"|"on": {...}}} or {"error"}."""
    from keras_eqssl.data.train_batches import first_batch, train_batches

    try:
        config = policy_config(name, args)
        start = time.perf_counter()
        dataset, specs = train_batches(config, progress=False)
        supply = measure_supply(dataset, config.data.batch_size, args)
        print(
            f"  {name:<11} supply {supply['images_per_s']:8.1f} images/s (CPU {supply['cpu_ms_per_image']:.2f} "
            f"ms/image; built and timed in {time.perf_counter() - start:.1f} s)",
            flush=True,
        )
        sample = tf.nest.map_structure(lambda t: t.numpy(), first_batch(dataset))
    except Exception as err:  # noqa: BLE001
        print(f"  {name:<11} failed: {bench_train.short_error(err)}", flush=True)
        return {"error": bench_train.short_error(err)}
    consume = {("on" if jit else "off"): measure_consume(config, specs, sample, jit, args) for jit in jits}
    return {"supply": supply, "consume": consume}


def policy_in_child(name: str, args) -> dict:
    """`bench_policy` in a fresh Python process: each model's memory is freed with it; a crash is a failed row."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "policy.json")
        command = [sys.executable, os.path.abspath(__file__), *child_args(args), "--child-policy", name]
        proc = subprocess.run([*command, "--child-out", out_path], stdout=None, stderr=subprocess.PIPE, text=True)
        if proc.returncode == 0 and os.path.exists(out_path):
            with open(out_path) as f:
                return json.load(f)
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = f"worker exited with {proc.returncode}" + (f" ({lines[-1][:120]})" if lines else "")
        print(f"  {name}: failed: {reason}", flush=True)
        return {"error": reason}


def child_args(args) -> list[str]:
    out = []
    for option in (
        "batch", "size", "width", "backbone_stem", "image_size", "batches", "warmup", "steps", "step_warmup",
        "repeats", "jit", "precision", "folder",
    ):  # fmt: skip
        value = getattr(args, option)
        if value is not None:
            out += ["--" + option.replace("_", "-"), str(value)]
    return out


def parse_list(text: str, known, what: str, parser) -> list[str]:
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if item and item not in known:
            parser.error(f"unknown {what} {item!r}; expected some of {', '.join(known)}")
        if item and item not in out:
            out.append(item)
    if not out:
        parser.error(f"--{what} is empty")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policies", default=",".join(POLICIES), help=f"comma-separated (default {','.join(POLICIES)})"
    )
    parser.add_argument("--batch", type=int, default=64, help="source images per batch (default 64)")
    parser.add_argument("--size", type=int, default=96, help="view side in px, ResNet rows (default 96)")
    parser.add_argument("--width", type=float, default=1.0, help="ResNet-18 width multiplier (default 1.0)")
    parser.add_argument("--backbone-stem", default="imagenet", choices=bench_train.STEMS, help="default imagenet")
    parser.add_argument("--image-size", type=int, help="source image side (default the config's, 128)")
    parser.add_argument("--batches", type=int, default=8, help="timed pipeline batches per run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed pipeline batches first (default 2)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per run (default 2)")
    parser.add_argument("--step-warmup", type=int, default=1, help="untimed steps first, incl. XLA (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each; best is kept (default 1)")
    parser.add_argument("--jit", default="off,on", help="jit_compile settings of the step: off, on or off,on")
    parser.add_argument(
        "--precision", default="float32", choices=bench_train.PRECISIONS, help="the step's dtype policy"
    )
    parser.add_argument(
        "--disk-images", type=int, default=0, help="read N JPEGs written to a temporary folder (default 0: the photos)"
    )
    parser.add_argument("--disk-side", type=int, default=288, help="side of those JPEGs in px (default 288)")
    parser.add_argument("--folder", help="read this image folder (flat or class subfolders) instead of the photos")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    parser.add_argument("--in-process", action="store_true", help="run every policy in this process (no children)")
    parser.add_argument("--child-policy", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    jit_names = parse_list(args.jit, ("off", "on"), "jit", parser)
    jits = [name == "on" for name in jit_names]
    bench_train.cpu_only()
    if args.child_policy:
        out = bench_policy(args.child_policy, jits, args)
        with open(args.child_out, "w") as f:
            json.dump(out, f)
        return out
    policies = parse_list(args.policies, tuple(POLICIES), "policies", parser)
    if min(args.batch, args.size, args.batches, args.steps, args.repeats) < 1 or args.width <= 0:
        parser.error("--batch, --size, --batches, --steps, --repeats and --width must be positive")
    if min(args.warmup, args.step_warmup) < 0:
        parser.error("--warmup and --step-warmup must be >= 0")
    if args.disk_images < 0 or args.disk_side < 1:
        parser.error("--disk-images must be >= 0 and --disk-side positive")
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        if args.disk_images and not args.folder:
            args.folder = os.path.join(tmp, "images")
            start = time.perf_counter()
            size = write_jpeg_folder(args.folder, args.disk_images, args.disk_side)
            print(
                f"wrote {args.disk_images} JPEGs of {args.disk_side} px ({size / 2**20:.0f} MB) in "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
        return run_policies(policies, jits, jit_names, args)


def run_policies(policies: list[str], jits: list[bool], jit_names: list[str], args) -> dict:
    """Every policy's row, the table and the JSON (see the module docstring)."""
    descriptions = {name: describe(name, policy_config(name, args)) for name in policies}
    source = folder_line(args.folder) if args.folder else "source: random crops of the bundled photos, in memory"
    print(
        f"{machine_line()}; TF {tf.__version__}, Keras {keras.__version__}; supply: {args.warmup} + {args.batches} "
        f"batches; consume: {args.step_warmup} + {args.steps} steps ({args.precision}, jit {args.jit}); best of "
        f"{args.repeats}.",
        flush=True,
    )
    print(cpu_features_line(), flush=True)
    print(source, flush=True)
    for text in descriptions.values():
        print(f"  {text}", flush=True)

    start = time.perf_counter()
    results = {}
    for name in policies:
        results[name] = bench_policy(name, jits, args) if args.in_process else policy_in_child(name, args)
    wall = time.perf_counter() - start

    rows = []
    for name in policies:
        figures = results[name]
        row = {"policy": name, "config": f"configs/{POLICIES[name][0]}.py", "views": POLICIES[name][1]}
        if "error" in figures:
            rows.append({**row, "error": figures["error"]})
            continue
        supply = figures["supply"]
        row.update(supply_images_per_s=supply["images_per_s"], supply_cpu_ms_per_image=supply["cpu_ms_per_image"])
        ratios = []
        for jit, consume in figures["consume"].items():
            if "error" in consume:
                row[f"consume_jit_{jit}_error"] = consume["error"]
                continue
            ratio = supply["images_per_s"] / consume["images_per_s"]
            share = supply["cpu_ms_per_image"] / (supply["cpu_ms_per_image"] + consume["cpu_ms_per_image"])
            row[f"consume_jit_{jit}_images_per_s"] = consume["images_per_s"]
            row[f"consume_jit_{jit}_cpu_ms_per_image"] = consume["cpu_ms_per_image"]
            row[f"ratio_jit_{jit}"] = ratio
            row[f"pipeline_cpu_share_jit_{jit}"] = share
            ratios.append(ratio)
        if ratios:
            row["min_ratio"] = min(ratios)
        rows.append(row)

    print()
    print(f"Input pipeline supply vs training step consumption, source images/s ({args.precision} step);")
    print(machine_line())
    print(cpu_features_line())
    print(source)
    for text in descriptions.values():
        print(text)
    print("supply = train_batches alone; consume = the step alone on a repeated batch; ratio = supply / consume;")
    print("CPU share = the pipeline's CPU time per image over the pipeline's plus the step's.")
    header = ["policy", "supply images/s", "pipeline ms CPU/image"]
    for jit in jit_names:
        header += [f"consume jit {jit}", f"ratio jit {jit}", f"CPU share jit {jit}"]
    lines = []
    for row in rows:
        if "error" in row:
            lines.append([row["policy"], f"failed: {row['error']}", *[""] * (len(header) - 2)])
            continue
        cells = [row["policy"], f"{row['supply_images_per_s']:.1f}", f"{row['supply_cpu_ms_per_image']:.2f}"]
        for jit in jit_names:
            if f"ratio_jit_{jit}" in row:
                cells += [
                    f"{row[f'consume_jit_{jit}_images_per_s']:.1f}",
                    f"{row[f'ratio_jit_{jit}']:.1f}",
                    f"{row[f'pipeline_cpu_share_jit_{jit}']:.2f}",
                ]
            else:
                cells += ["failed", "", ""]
        lines.append(cells)
    bench_train.print_table(header, lines)
    low = [f"{r['policy']} ({r['min_ratio']:.1f})" for r in rows if "min_ratio" in r and r["min_ratio"] < TARGET]
    low += [f"{r['policy']} (no figure)" for r in rows if "min_ratio" not in r]
    print(
        f"target supply / consume >= {TARGET:g} for every policy: "
        + ("met" if not low else f"NOT met: {', '.join(low)}")
    )
    print(f"total {wall:.0f} s")

    out = {"rows": rows, "wall_s": wall, "configs": descriptions, "source": source}
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json" and not k.startswith("child_")}
        config.update(policies=policies, tensorflow=tf.__version__, keras=keras.__version__)
        cpu = {"model": cpu_model(), "cores": os.cpu_count(), "flags": bf16_support()}
        with open(args.json, "w") as f:
            json.dump({"config": config, "cpu": cpu, **out}, f, indent=2)
    return out


if __name__ == "__main__":
    main()
