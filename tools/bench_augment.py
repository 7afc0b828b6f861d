"""Throughput of our SimCLR two-view policy beside the same chain built from keras-cv / Keras layers.

Both run in one process, in the same tf.data pipeline:

    source uint8 images (B, 256, 256, 3) -> .batch(B) -> .map(two-view fn, AUTOTUNE) -> .prefetch(AUTOTUNE)

and the number reported is **source images per second**: every source image yields two views
(so views/s is twice that). Ours (`keras_eqssl.augment.policies.simclr`) also returns every
parameter it sampled for each image; theirs returns only the views.

Usage:
    python tools/bench_augment.py                       # 64 and 224 px, batch 256
    python tools/bench_augment.py --sizes 64 --batches 4 --repeats 1
    python tools/bench_augment.py --keras_cv            # keras-cv's transforms against ours (see below)

`--keras_cv` measures what keras-cv would still do for the package: the projective transform
behind `Rotation`, `Translation` and AugMix's geometric ops (keras-cv's `transform` and
`get_rotation_matrix`, against `keras_eqssl.augment.affine` and Keras 3's
`keras.ops.image.affine_transform`) and `Solarize` (keras-cv's `Solarization`), on the same inputs
and parameters, eagerly and traced: whether the outputs are equal (bit for bit; else the largest
difference), the time per batch of each, and the seconds `import keras_cv` adds to a fresh process
that has imported TensorFlow and Keras. It needs keras-cv installed (the `test` extra has it).

The keras-cv / Keras chain ("theirs"), one layer per SimCLR step, each picked because it works in
this version combination (TF 2.21, Keras 3.15, keras-cv 0.9) and is the closest match that runs
per image:

- crop: `keras_cv.layers.RandomCropAndResize(crop_area_factor=(0.08, 1), aspect_ratio_factor=(3/4, 4/3))`.
  Keras 3 has no random *resized* crop (RandomCrop keeps the scale, RandomZoom keeps the aspect
  ratio). It clips an oversized box where torchvision (and ours) redraws it.
- flip: `keras.layers.RandomFlip("horizontal")`, vectorised, per-image coin.
- colour jitter with p=0.8: `keras_cv.layers.RandomApply(keras_cv.layers.RandomColorJitter(...), rate=0.8)`.
  Neither Keras 3 nor keras-cv has a per-image probability on the jitter itself, so keras-cv's
  RandomApply (a per-image map over the batch) supplies it; inside it keras-cv's jitter
  (vectorised). Both jitters (keras-cv's and `keras.layers.RandomColorJitter`) run a fixed order
  (brightness, contrast, saturation, hue), not SimCLR's random per-image order, and their
  brightness is additive; the two are equally fast here, and keras-cv's sits with its own RandomApply.
  Factors: brightness 0.4, contrast 0.4 ([0.6, 1.4]), saturation [0.6, 1.4] (keras-cv encodes a
  factor f as f / (1 + f), hence (0.375, 0.583)), hue 0.1 turn (keras-cv's hue_factor 0.2).
- grayscale with p=0.2: `keras.layers.RandomGrayscale(factor=0.2)`, vectorised, per-image coin
  (keras-cv's `Grayscale` has no probability).
- blur with p=0.5: `keras_cv.layers.RandomApply(keras_cv.layers.RandomGaussianBlur(k, factor=(0.1, 2)), rate=0.5)`.
  keras-cv's blur draws a sigma per image and is separable, as SimCLR's. `keras.layers.RandomGaussianBlur`
  has its own per-image coin but draws one sigma per batch and convolves with a full k x k kernel:
  about 8x slower at 224 px here, so it would flatter ours.

Kernel size of the blur: about 10% of the output side, odd, at least 3 (7 at 64 px, 23 at 224 px),
as ours derives it. Timing: `--warmup` batches go through a first iterator (the first batches pay
for graph optimisation and thread start-up; the map functions are traced when the pipeline is
built), then a fresh iterator is timed from its creation over `--batches` batches, so no batch
prepared during the warm-up is counted. With `--repeats` > 1 ours and theirs alternate and the
best run of each is reported.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

try:
    import keras_eqssl  # noqa: F401
except ImportError:  # run from a checkout that is not installed: `python tools/bench_augment.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_eqssl.augment.policies import simclr  # noqa: E402

tf.get_logger().setLevel("ERROR")  # keras-cv's vectorized_map warns once per op it cannot vectorise

SOURCE_SIDE = 256


def blur_kernel_size(size: int) -> int:
    """About 10% of the side, odd, at least 3: what `GaussianBlur` derives for a square image."""
    k = max(3, int(0.1 * size))
    return k + 1 if k % 2 == 0 else k


def source_images(count: int, synthetic: bool, seed: int = 0) -> np.ndarray:
    """(count, 256, 256, 3) uint8: the bundled scikit-image photos (tiled, randomly flipped and
    rolled so that the pool is not 16 repeated images), or uniform noise with `synthetic`."""
    rng = np.random.default_rng(seed)
    if not synthetic:
        try:
            from keras_eqssl.data.photos import load_photos

            photos = load_photos()
        except Exception as err:  # noqa: BLE001 - a benchmark falls back rather than stops
            print(f"(scikit-image photos unavailable: {type(err).__name__}: {err}; using synthetic images)")
            synthetic = True
    if synthetic:
        return rng.integers(0, 256, size=(count, SOURCE_SIDE, SOURCE_SIDE, 3), dtype=np.uint8)
    out = []
    for i in range(count):
        image = photos[i % len(photos)]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        out.append(np.roll(image, shift=tuple(rng.integers(0, SOURCE_SIDE, size=2)), axis=(0, 1)))
    return np.stack(out)


def ours_fn(size: int):
    """(step, uint8 batch) -> ({"v1", "v2"}, params): our policy, seeded per batch by its step."""
    policy = simclr(size)

    def fn(step, images):
        return policy(images, seed=0, step=step)

    return fn


def theirs_chain(size: int):
    """The SimCLR view chain from keras-cv / Keras layers (see the module docstring for why each)."""
    import keras
    import keras_cv

    k = blur_kernel_size(size)
    return [
        keras_cv.layers.RandomCropAndResize(
            target_size=(size, size), crop_area_factor=(0.08, 1.0), aspect_ratio_factor=(3 / 4, 4 / 3)
        ),
        keras.layers.RandomFlip("horizontal"),
        keras_cv.layers.RandomApply(
            keras_cv.layers.RandomColorJitter(
                value_range=(0, 1),
                brightness_factor=0.4,
                contrast_factor=0.4,
                saturation_factor=(0.6 / 1.6, 1.4 / 2.4),
                hue_factor=0.2,
            ),
            rate=0.8,
        ),
        keras.layers.RandomGrayscale(factor=0.2),
        keras_cv.layers.RandomApply(keras_cv.layers.RandomGaussianBlur(kernel_size=k, factor=(0.1, 2.0)), rate=0.5),
    ]


def theirs_fn(size: int):
    """(step, uint8 batch) -> {"v1", "v2"}: the layer chain called twice, the ordinary way."""
    chain = theirs_chain(size)

    def view(images):
        for layer in chain:
            images = layer(images, training=True)
        return images

    def fn(step, images):
        del step
        images = tf.cast(images, tf.float32) / 255.0
        return {"v1": view(images), "v2": view(images)}

    return fn


def pipeline(pool: np.ndarray, batch: int, fn) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(pool).repeat().batch(batch, drop_remainder=True)
    return ds.enumerate().map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def check_views(ds: tf.data.Dataset, size: int, batch: int, name: str) -> None:
    """One batch: two views of the right shape, in [0, 1], and not the same."""
    out = next(iter(ds))
    views = out[0] if isinstance(out, tuple) else out
    v1, v2 = views["v1"], views["v2"]
    if v1.shape != (batch, size, size, 3) or v2.shape != (batch, size, size, 3):
        raise RuntimeError(f"{name}: views of shape {v1.shape}, {v2.shape}; expected ({batch}, {size}, {size}, 3).")
    if float(tf.reduce_min(v1)) < 0 or float(tf.reduce_max(v1)) > 1.0 + 1e-5:
        raise RuntimeError(f"{name}: view values outside [0, 1].")
    if bool(tf.reduce_all(v1 == v2)):
        raise RuntimeError(f"{name}: the two views are identical.")


def time_pipeline(ds: tf.data.Dataset, warmup: int, batches: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for `batches` batches from a fresh iterator, after
    `warmup` batches from another. CPU time is less sensitive than wall time to other work on the
    machine, so it is printed beside it."""
    for _ in ds.take(warmup):
        pass
    cpu_start, start = os.times(), time.perf_counter()
    iterator = iter(ds)
    for _ in range(batches):
        next(iterator)
    elapsed, cpu_end = time.perf_counter() - start, os.times()
    del iterator
    return elapsed, (cpu_end.user + cpu_end.system) - (cpu_start.user + cpu_start.system)


def keras_cv_import_seconds(repeats: int) -> float:
    """The fewest seconds `import keras_cv` took in a fresh process that had imported TensorFlow and Keras."""
    code = "import time, tensorflow, keras; t = time.perf_counter(); import keras_cv; print(time.perf_counter() - t)"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        for _ in range(repeats)
    ]
    return min(float(r.stdout.strip().splitlines()[-1]) for r in runs)


def transform_cases(size: int, batch: int) -> dict:
    """name -> {implementation: fn(images)} for the transforms that used keras-cv, on shared parameters."""
    import keras
    from keras_cv.layers import Solarization
    from keras_cv.src.utils import preprocessing

    from keras_eqssl.augment import affine
    from keras_eqssl.augment.color import solarize

    rng = np.random.default_rng(0)
    angles = tf.constant(rng.uniform(-math.pi / 4, math.pi / 4, batch), tf.float32)
    shifts = tf.constant(rng.uniform(-size / 8, size / 8, (batch, 2)), tf.float32)
    side = tf.constant(float(size))
    kcv_solarize = Solarization(value_range=(0.0, 1.0))
    thresholds = tf.fill([batch, 1, 1, 1], 0.5 * 255.0)

    def kcv(matrices):
        return lambda x: preprocessing.transform(x, matrices(), fill_mode="constant", fill_value=0.0)

    def core(matrices):
        return lambda x: keras.ops.image.affine_transform(x, matrices(), fill_mode="constant", fill_value=0)

    rotation = {
        "keras-cv": kcv(lambda: preprocessing.get_rotation_matrix(angles, side, side)),
        "ours": lambda x: affine.affine(x, affine.rotation_matrix(angles, side, side)),
        "keras core": core(lambda: affine.rotation_matrix(angles, side, side)),
    }
    translate = lambda: affine.translation_matrix(shifts[:, 0], shifts[:, 1])
    translation = {
        "keras-cv": kcv(translate),
        "ours": lambda x: affine.affine(x, translate()),
        "keras core": core(translate),
    }
    solarization = {
        "keras-cv": lambda x: kcv_solarize.augment_images(
            x, {"thresholds": thresholds, "additions": tf.zeros_like(thresholds)}
        ),
        "ours": lambda x: solarize(x, 0.5),
    }
    return {"rotation": rotation, "translation": translation, "solarize": solarization}


def seconds_per_call(fn, images, repeats: int) -> float:
    fn(images)  # traces (for a tf.function) and warms up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images).numpy()
        best = min(best, time.perf_counter() - start)
    return best


def compare_keras_cv(sizes, batch: int, repeats: int) -> None:
    """Prints the `--keras_cv` table: equality and time of each implementation, and keras-cv's import time."""
    from keras_eqssl.machine import machine_line

    print(machine_line())
    print(f"TF {tf.__version__}; batch {batch} float32 images; time = best of {repeats} calls after a warm-up.")
    print(f"import keras_cv after TensorFlow and Keras: {keras_cv_import_seconds(3):.2f} s (best of 3 fresh processes)")
    header = ["size", "transform", "implementation", "mode", "ms/batch", "equal to keras-cv", "max |diff|"]
    print(" | ".join(header))
    for size in sizes:
        images = tf.constant(np.random.default_rng(1).random((batch, size, size, 3), dtype=np.float32))
        for name, impls in transform_cases(size, batch).items():
            reference = {mode: None for mode in ("eager", "traced")}
            for impl, fn in impls.items():
                for mode, run in (("eager", fn), ("traced", tf.function(fn))):
                    out = run(images).numpy()
                    if reference[mode] is None:
                        reference[mode] = out
                    diff = float(np.max(np.abs(out - reference[mode])))
                    ms = 1000 * seconds_per_call(run, images, repeats)
                    same = "yes" if np.array_equal(out, reference[mode]) else "no"
                    print(f"{size} | {name} | {impl} | {mode} | {ms:.2f} | {same} | {diff:.3g}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,224", help="output sides, comma-separated (default 64,224)")
    parser.add_argument("--batch", type=int, default=256, help="source images per batch (default 256)")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per run (default 8)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches before each run (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating; best is kept (default 3)")
    parser.add_argument("--synthetic", action="store_true", help="uniform-noise source images, not photos")
    parser.add_argument("--keras_cv", action="store_true", help="keras-cv's transforms against ours (module docstring)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.batch < 1 or args.batches < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("sizes, --batch, --batches and --repeats must be positive, --warmup >= 0")
    if args.keras_cv:
        compare_keras_cv(sizes, args.batch, max(args.repeats, 5))
        return

    pool = source_images(args.batch, args.synthetic)
    print(
        f"TF {tf.__version__}, {os.cpu_count()} CPU cores; source: {'synthetic' if args.synthetic else 'scikit-image photos'} "
        f"{pool.shape[1]}x{pool.shape[2]} uint8, batch {args.batch}, warm-up {args.warmup} + timed {args.batches} "
        f"batches, best of {args.repeats}."
    )
    results = []
    for size in sizes:
        datasets = {
            "ours": pipeline(pool, args.batch, ours_fn(size)),
            "theirs": pipeline(pool, args.batch, theirs_fn(size)),
        }
        for name, ds in datasets.items():
            check_views(ds, size, args.batch, name)
        best = {name: float("inf") for name in datasets}
        cpu = {name: float("inf") for name in datasets}
        images = args.batches * args.batch
        for r in range(args.repeats):
            for name, ds in datasets.items():
                seconds, cpu_seconds = time_pipeline(ds, args.warmup, args.batches)
                best[name] = min(best[name], seconds)
                cpu[name] = min(cpu[name], cpu_seconds)
                print(
                    f"  {size:>4} px  {name:<6}  run {r + 1}: {seconds:7.2f} s  {images / seconds:8.1f} source images/s"
                    f"  (CPU {1000 * cpu_seconds / images:.2f} ms per source image)",
                    flush=True,
                )
        results.append(
            (
                size,
                images / best["ours"],
                images / best["theirs"],
                *(1000 * cpu[n] / images for n in ("ours", "theirs")),
            )
        )

    print()
    print("Throughput in SOURCE images/s (each source image -> two views; views/s = 2x), best run of each;")
    print("CPU = process CPU time (all cores) per source image, best run.")
    print("ours = keras_eqssl simclr() with every parameter recorded; theirs = keras-cv/Keras layer chain, twice.")
    header = ["size", "ours img/s", "theirs img/s", "ours CPU ms", "theirs CPU ms", "ours/theirs"]
    print(" | ".join(f"{h:>{max(6, len(h))}}" for h in header))
    print("-+-".join("-" * max(6, len(h)) for h in header))
    for size, ours, theirs, ours_cpu, theirs_cpu in results:
        cells = [
            f"{size}",
            f"{ours:.1f}",
            f"{theirs:.1f}",
            f"{ours_cpu:.2f}",
            f"{theirs_cpu:.2f}",
            f"{ours / theirs:.2f}",
        ]
        print(" | ".join(f"{c:>{max(6, len(h))}}" for c, h in zip(cells, header)))
    slow = [size for size, ours, theirs, *_ in results if ours < 0.9 * theirs]
    print("target ours/theirs >= 0.9: " + ("met" if not slow else f"NOT met at {', '.join(map(str, slow))} px"))


if __name__ == "__main__":
    main()
