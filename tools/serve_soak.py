"""Serving soak: requests of varied sizes to an exported encoder SavedModel; no error, and flat memory.

What a serving process does, `--requests` times (default 1,000): call a signature of
`tf.saved_model.load(DIR).signatures` with a `tf.Tensor` batch of random images and check that
every output is float32 `(N, C)` and finite. The process never imports Keras or keras_eqssl's
training code, only TensorFlow, NumPy and the signature names.

Requests (`plan_requests`, seeded by `--seed`): request 0 is one 1x1 image, request 1 one
`max_side` x `max_side` image, request 2 the largest request allowed (`--max_batch` images of the
side that fits `--max_pixels`); the rest draw H and W log-uniformly in [1, `--max_side`] and the
batch uniformly in [1, `--max_batch`], the batch then shrunk so that N * H * W <= `--max_pixels`
(default 64 * 512 * 512: a 64 x 1024 x 1024 request would be 800 MB of float32). The last two
requests are 1x1 and `max_side` x `max_side` again, after the warm-up. Pixels are uniform noise;
`--signature=both` alternates `serving_default` (float32, the noise / 255, in [0, 1]) and
`serving_uint8` (the uint8 noise).

Memory: the resident set (VmRSS in /proc/self/status) after every request. The warm-up is the
first `--warmup` fraction of the requests (default 10%). The tool prints the curve (every
`--every` requests), the RSS at the end of the warm-up, the max after it, the final RSS and the
least-squares slope after the warm-up in MB per 100 requests; memory is "flat" when the trend,
that slope times the requests after the warm-up, grows by less than `--tolerance` (default 5%) of
the warm-up RSS. (The trend, not the maximum: a leak is a steady climb, while allocator retention
is a step or a spike; the max after warm-up is printed beside it.) With glibc's
default malloc the RSS ratchets up by tens of MB over the first few hundred requests (freed
mid-sized buffers are kept) and then stays level; `MALLOC_MMAP_THRESHOLD_=1048576` in the
environment turns that off, which tells allocator retention from a leak (docs/serving.md).

Without `--export`, a small untrained encoder (the `export_encoder` docstring's model: ResNet-18,
cifar stem, width 0.125, split (32, 32), 32 px) is exported to a temporary directory by a child
process first, so this process holds what a serving process holds: TensorFlow and the SavedModel.

Exit status: 0 when no request failed and memory is flat; 1 otherwise.

Usage:
    python tools/serve_soak.py                                   # 1,000 requests to a fresh tiny export
    python tools/serve_soak.py --export=exports/x --requests=5000 --json=/tmp/soak.json
    python tools/serve_soak.py --requests=20 --max_side=64 --max_batch=4   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

try:
    import keras_eqssl  # noqa: F401
except ImportError:  # run from a checkout that is not installed: `python tools/serve_soak.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_eqssl.export.encoder import INPUT_KEY, SIGNATURE_KEY, UINT8_SIGNATURE_KEY  # noqa: E402  (TF only)
from keras_eqssl.machine import cpu_model  # noqa: E402

tf.get_logger().setLevel("ERROR")


def rss_mb() -> float:
    """This process's resident set size in MB (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise OSError("no VmRSS line in /proc/self/status")


def plan_requests(count: int, seed: int, max_side: int, max_batch: int, max_pixels: int) -> list[tuple[int, int, int]]:
    """`count` requests `(N, H, W)`; see the module docstring. Reproducible from `seed`.

    Example:
    >>> plan = plan_requests(10, 0, max_side=64, max_batch=4, max_pixels=4 * 32 * 32)
    >>> plan[0], plan[1], plan[2], plan[-1]
    ((1, 1, 1), (1, 64, 64), (4, 32, 32), (1, 64, 64))
    """
    if count < 5:
        raise ValueError(f"plan_requests: count must be >= 5 (the 5 fixed requests); received {count}")
    rng = np.random.default_rng(seed)
    side = max(1, min(max_side, math.isqrt(max(1, max_pixels // max_batch))))
    fixed_start = [(1, 1, 1), (1, max_side, max_side), (max_batch, side, side)]
    fixed_end = [(1, 1, 1), (1, max_side, max_side)]
    plan = list(fixed_start)
    for _ in range(count - len(fixed_start) - len(fixed_end)):
        h, w = (int(np.exp(rng.uniform(0.0, np.log(max_side + 1)))) for _ in range(2))
        h, w = min(max(h, 1), max_side), min(max(w, 1), max_side)
        n = int(rng.integers(1, max_batch + 1))
        n = max(1, min(n, max_pixels // (h * w)))
        plan.append((n, h, w))
    return plan + fixed_end


def memory_verdict(rss: list[float], warmup: int, tolerance: float) -> dict:
    """Figures of an RSS curve (MB, one value per request) after `warmup` requests.

    Example:
    >>> memory_verdict([100.0, 150.0, 151.0, 150.0, 152.0], warmup=2, tolerance=0.05)["flat"]
    True
    >>> memory_verdict([100.0, 150.0, 160.0, 170.0, 180.0], warmup=2, tolerance=0.05)["flat"]
    False
    >>> memory_verdict([100.0, 150.0, 150.0, 160.0, 150.0, 150.0], warmup=2, tolerance=0.05)["flat"]  # a spike
    True
    """
    if not 1 <= warmup < len(rss):
        raise ValueError(f"memory_verdict: warmup must be in [1, {len(rss) - 1}]; received {warmup}")
    base = rss[warmup - 1]
    after = np.asarray(rss[warmup:])
    steps = np.arange(warmup, len(rss))
    slope = float(np.polyfit(steps, after, 1)[0]) * 100 if len(after) > 1 else 0.0
    growth = float(after.max()) - base
    trend = slope / 100 * len(after)
    return {
        "rss_end_of_warmup_mb": base,
        "rss_max_after_warmup_mb": float(after.max()),
        "rss_max_after_warmup_at": int(warmup + after.argmax()) + 1,  # 1-based, as "request k"
        "rss_final_mb": float(after[-1]),
        "slope_mb_per_100": slope,
        "growth_mb": growth,
        "growth_fraction": growth / base,
        "trend_growth_mb": trend,
        "trend_fraction": trend / base,
        "tolerance": tolerance,
        "flat": trend < tolerance * base,
    }


def routes(signatures, which: str) -> list[tuple[str, tf.DType]]:
    """The (signature name, input dtype) pairs to call, for `--signature=both|float|uint8`."""
    dtypes = {name: fn.structured_input_signature[1][INPUT_KEY].dtype for name, fn in signatures.items()}
    found = {}
    if dtypes.get(SIGNATURE_KEY) == tf.float32:
        found["float"] = (SIGNATURE_KEY, tf.float32)
    if dtypes.get(UINT8_SIGNATURE_KEY) == tf.uint8:
        found["uint8"] = (UINT8_SIGNATURE_KEY, tf.uint8)
    elif dtypes.get(SIGNATURE_KEY) == tf.uint8:  # a format-1 export
        found["uint8"] = (SIGNATURE_KEY, tf.uint8)
    wanted = ["float", "uint8"] if which == "both" else [which]
    chosen = [found[w] for w in wanted if w in found]
    if not chosen:
        have = ", ".join(f"{n}: {d.name}" for n, d in dtypes.items())
        raise ValueError(f"--signature={which}: the export has no such signature (it has {have})")
    return chosen


def check_outputs(outputs: dict, n: int, dims: dict[str, int]) -> str | None:
    """None if every output is float32 (n, C) and finite; else what is wrong."""
    for key, dim in dims.items():
        value = outputs.get(key)
        if value is None:
            return f"no output {key!r}"
        array = value.numpy()
        if array.dtype != np.float32 or array.shape != (n, dim):
            return f"{key}: {array.dtype} {array.shape}, expected float32 {(n, dim)}"
        if not np.isfinite(array).all():
            return f"{key}: {int((~np.isfinite(array)).sum())} non-finite values"
    return None


def soak(export_dir: str, plan, which: str, seed: int, progress_every: int = 100) -> dict:
    """Runs `plan` against the SavedModel; returns per-request RSS, seconds, errors and counts."""
    rss_start = rss_mb()
    signatures = tf.saved_model.load(export_dir).signatures
    rss_loaded = rss_mb()
    chosen = routes(signatures, which)
    dims = {k: int(spec.shape[-1]) for k, spec in signatures[chosen[0][0]].structured_outputs.items()}
    rng = np.random.default_rng(seed + 1)  # pixels; the plan has its own stream
    rss, seconds, errors, used = [], [], [], []
    start = time.perf_counter()
    for i, (n, h, w) in enumerate(plan):
        name, dtype = chosen[i % len(chosen)]
        pixels = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        images = np.divide(pixels, np.float32(255), dtype=np.float32) if dtype == tf.float32 else pixels
        del pixels
        t0 = time.perf_counter()
        try:
            outputs = signatures[name](**{INPUT_KEY: tf.constant(images)})
            problem = check_outputs(outputs, n, dims)
        except Exception as err:  # counted and reported; the soak goes on
            problem = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"
        seconds.append(time.perf_counter() - t0)
        del images
        outputs = None
        if problem is not None:
            errors.append({"request": i + 1, "signature": name, "shape": [n, h, w, 3], "error": problem})
        used.append(name)
        rss.append(rss_mb())
        if (i + 1) % progress_every == 0 or i + 1 == len(plan):
            print(
                f"  request {i + 1}/{len(plan)}: RSS {rss[-1]:.1f} MB, {time.perf_counter() - start:.1f} s, "
                f"errors {len(errors)}",
                flush=True,
            )
    return {
        "rss_start_mb": rss_start,
        "rss_loaded_mb": rss_loaded,
        "rss_mb": rss,
        "seconds": seconds,
        "errors": errors,
        "signatures": {name: used.count(name) for name, _ in chosen},
        "dtypes": {name: dtype.name for name, dtype in chosen},
        "wall_s": time.perf_counter() - start,
    }


def write_export(out_dir: str) -> None:
    """The child process's job: export the untrained tiny encoder to `out_dir`."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from keras_eqssl.export import export_encoder
    from keras_eqssl.methods import PairModel, VICReg
    from keras_eqssl.nn import backbone_from_name

    model = PairModel(
        backbone_from_name("resnet18", stem="cifar", width=0.125),
        VICReg(projector_units=[64, 64]),
        split=(32, 32),
        image_size=32,
    )
    export_encoder(model, out_dir)


def export_in_child(out_dir: str) -> float:
    """Exports the tiny encoder to `out_dir` in a child process; returns its seconds."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), f"--write_export={out_dir}"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"exporting the tiny encoder failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def print_curve(rss: list[float], plan, used_every: int, warmup: int) -> list[dict]:
    """Prints RSS every `used_every` requests as a table with a bar; returns the rows."""
    marks = sorted({1, warmup, len(rss), *range(used_every, len(rss) + 1, used_every)})
    low, high = min(rss), max(rss)
    span = max(high - low, 1e-9)
    print(f"\nResident memory after request k (bar: from the curve's min {low:.1f} MB to its max {high:.1f} MB):")
    print(f"{'k':>6} | {'RSS MB':>8} | {'request N x H x W':>18} | ")
    rows = []
    for k in marks:
        n, h, w = plan[k - 1]
        bar = "#" * (1 + round(30 * (rss[k - 1] - low) / span))
        note = "  <- end of warm-up" if k == warmup else ""
        print(f"{k:>6} | {rss[k - 1]:>8.1f} | {f'{n} x {h} x {w}':>18} | {bar}{note}")
        rows.append({"request": k, "rss_mb": rss[k - 1]})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", help="a SavedModel written by export_encoder (default: a fresh tiny export)")
    parser.add_argument("--requests", type=int, default=1000, help="number of requests (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sizes and the pixels (default 0)")
    parser.add_argument("--max_side", "--max-side", type=int, default=1024, help="largest H and W (default 1024)")
    parser.add_argument("--max_batch", "--max-batch", type=int, default=64, help="largest batch (default 64)")
    parser.add_argument(
        "--max_pixels", "--max-pixels", type=int, default=64 * 512 * 512,
        help="cap on N * H * W per request; the batch shrinks to fit (default 64*512*512)",
    )  # fmt: skip
    parser.add_argument(
        "--signature", choices=("both", "float", "uint8"), default="both",
        help="serving_default (float32 [0, 1]), serving_uint8, or both alternately (default)",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of the requests (default 0.1)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="flat: trend growth after warm-up < this x warm-up RSS (default 0.05)",
    )
    parser.add_argument("--every", type=int, default=50, help="print the RSS every this many requests (default 50)")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    parser.add_argument("--write_export", help=argparse.SUPPRESS)  # internal: the child process that exports
    args = parser.parse_args(argv)
    if args.write_export:
        write_export(args.write_export)
        return 0
    if args.requests < 10 or min(args.max_side, args.max_batch, args.max_pixels, args.every) < 1:
        parser.error("--requests must be >= 10 and --max_side, --max_batch, --max_pixels, --every >= 1")
    if not 0 < args.warmup < 1 or args.tolerance <= 0:
        parser.error("--warmup must be in (0, 1) and --tolerance > 0")

    devices = ", ".join(d.name for d in tf.config.list_physical_devices("GPU")) or "no GPU"
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), {devices}; TF {tf.__version__}, NumPy {np.__version__}")
    with tempfile.TemporaryDirectory(prefix="serve_soak-") as tmp:
        export_dir = args.export
        if export_dir is None:
            export_dir = os.path.join(tmp, "encoder")
            took = export_in_child(export_dir)
            print(
                f"export: untrained ResNet-18 (cifar stem, width 0.125, split 32/32, 32 px) -> {export_dir} ({took:.0f} s)"
            )
        else:
            print(f"export: {export_dir}")
        plan = plan_requests(args.requests, args.seed, args.max_side, args.max_batch, args.max_pixels)
        warmup = max(1, round(args.warmup * len(plan)))
        print(
            f"{len(plan)} requests, signature {args.signature}, seed {args.seed}; batch 1..{args.max_batch}, "
            f"H, W 1..{args.max_side} (log-uniform), N*H*W <= {args.max_pixels}; warm-up {warmup} requests",
            flush=True,
        )
        try:
            run = soak(export_dir, plan, args.signature, args.seed)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    rss = run["rss_mb"]
    curve = print_curve(rss, plan, args.every, warmup)
    figures = memory_verdict(rss, warmup, args.tolerance)
    n, h, w = (np.array([p[i] for p in plan]) for i in range(3))
    pixels = n * h * w
    covered = {
        "batch": [int(n.min()), int(n.max())],
        "height": [int(h.min()), int(h.max())],
        "width": [int(w.min()), int(w.max())],
        "pixels_per_request": [int(pixels.min()), int(pixels.max())],
        "images": int(n.sum()),
        "smallest_1x1": (1, 1, 1) in plan,
        "largest_side_batch_1": (1, args.max_side, args.max_side) in plan,
    }
    ms = np.asarray(run["seconds"]) * 1000
    print(
        f"\nRSS (MB): before loading {run['rss_start_mb']:.1f}, loaded {run['rss_loaded_mb']:.1f}, "
        f"end of warm-up (request {warmup}) {figures['rss_end_of_warmup_mb']:.1f}, "
        f"max after warm-up {figures['rss_max_after_warmup_mb']:.1f} (request {figures['rss_max_after_warmup_at']}), "
        f"final {figures['rss_final_mb']:.1f}"
    )
    print(f"slope after warm-up (least squares): {figures['slope_mb_per_100']:+.2f} MB per 100 requests")
    verdict = "flat" if figures["flat"] else "NOT flat"
    print(
        f"max after warm-up: {figures['growth_mb']:+.1f} MB = {100 * figures['growth_fraction']:.1f}% of the warm-up "
        f"RSS; trend over the {len(plan) - warmup} requests after it: {figures['trend_growth_mb']:+.1f} MB = "
        f"{100 * figures['trend_fraction']:.1f}% (tolerance {100 * args.tolerance:g}%): {verdict}"
    )
    calls = ", ".join(f"{count} {name} ({run['dtypes'][name]})" for name, count in run["signatures"].items())
    print(f"requests: {len(plan)} ({calls}), errors {len(run['errors'])}")
    print(
        f"covered: batch {covered['batch'][0]}..{covered['batch'][1]}, H {covered['height'][0]}..{covered['height'][1]}, "
        f"W {covered['width'][0]}..{covered['width'][1]}, N*H*W {covered['pixels_per_request'][0]}.."
        f"{covered['pixels_per_request'][1]}, {covered['images']} images; 1x1: "
        f"{'yes' if covered['smallest_1x1'] else 'no'}, {args.max_side}x{args.max_side} at batch 1: "
        f"{'yes' if covered['largest_side_batch_1'] else 'no'}"
    )
    print(
        f"latency per request: median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
        f"max {ms.max():.0f} ms; {covered['images'] / run['wall_s']:.1f} images/s; wall {run['wall_s']:.0f} s"
    )
    if not figures["flat"] and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        print(
            "hint: glibc keeps freed buffers of mid-sized requests (its mmap threshold rises as large ones are "
            "freed); to tell that from a leak, rerun with MALLOC_MMAP_THRESHOLD_=1048576 (docs/serving.md)"
        )
    for error in run["errors"][:5]:
        print(f"error at request {error['request']} ({error['signature']}, {error['shape']}): {error['error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "cpu": cpu_model(),
                    "cpu_count": os.cpu_count(),
                    "tensorflow": tf.__version__,
                    "args": vars(args),
                    "errors": run["errors"],
                    "num_errors": len(run["errors"]),
                    "signatures": run["signatures"],
                    "covered": covered,
                    "memory": {**figures, "rss_start_mb": run["rss_start_mb"], "rss_loaded_mb": run["rss_loaded_mb"]},
                    "curve": curve,
                    "rss_mb": rss,
                    "seconds": run["seconds"],
                    "plan": [list(p) for p in plan],
                    "wall_s": run["wall_s"],
                },
                f,
                indent=1,
            )
    return 0 if not run["errors"] and figures["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
