"""Throughput of the 3DIEBench pair readers: raw files vs the tfds dataset, in pairs per second.

Both run the same tf.data pipeline shape:

    pairs (decode 2 JPEGs + 2 latents + targets per object, map AUTOTUNE) -> .batch(B) -> .prefetch(AUTOTUNE)

The raw reader reads `image_k.jpg` / `latent_k.npy` files; the tfds path reads one record per
object (all its views' JPEG bytes) and decodes only the two chosen views. By default a fixture root
is written to a temporary folder (tests/threedie_fixture.py: patterned JPEGs, random latents) and
the tfds dataset is built from it; `--root` benchmarks an existing root instead (real 3DIEBench or
one our renderer wrote), `--tfds_dir` a tfds dataset already built from it.

Timing: `--warmup` batches through a first iterator, then a fresh iterator is timed over `--batches`
batches; with `--repeats` > 1 the two readers alternate and each one's best run is reported.
Note the OS page cache: after the first pass the files are read from memory, as in a long run.

Usage:
    python tools/bench_data.py                                  # 200 objects x 50 views x 128 px
    python tools/bench_data.py --objects 50 --views 10 --batches 10
    python tools/bench_data.py --root /data/3DIEBench --split val --tfds_dir /data/tfds
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_REPO, os.path.join(_REPO, "tests")]

from keras_eqssl.data.threedie import threedie_pairs  # noqa: E402
from keras_eqssl.data.threedie_tfds import ThreeDIEBench, tfds_pairs  # noqa: E402


def time_pairs(make_dataset, batch_size: int, warmup: int, batches: int) -> float:
    """Pairs per second over `batches` batches of a fresh iterator, after `warmup` batches of another."""
    ds = make_dataset()
    for _ in zip(range(warmup), ds):
        pass
    start = time.perf_counter()
    count = 0
    for batch in ds.take(batches):
        count += int(batch["label"].shape[0])
    return count / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="an existing 3DIEBench root (default: write a fixture)")
    parser.add_argument("--tfds_dir", help="tfds data dir with ThreeDIEBench built from --root (default: build it)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--views", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            from threedie_fixture import write_threedie

            start = time.perf_counter()
            root = write_threedie(
                os.path.join(tmp, "raw"), num_train=args.objects, num_val=2, num_views=args.views, size=args.size
            )
            print(
                f"wrote fixture: {args.objects} objects x {args.views} views x {args.size} px "
                f"in {time.perf_counter() - start:.1f} s"
            )
        tfds_dir = args.tfds_dir
        if tfds_dir is None:
            tfds_dir = os.path.join(tmp, "tfds")
            start = time.perf_counter()
            ThreeDIEBench(data_dir=tfds_dir).download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(root))
            )
            print(f"built tfds ThreeDIEBench in {time.perf_counter() - start:.1f} s")
        # Enough epochs that --warmup + --batches never run out.
        start = time.perf_counter()
        threedie_pairs(root, args.split, num_epochs=1)
        print(f"raw listing + header check of split {args.split!r}: {time.perf_counter() - start:.1f} s")

        def raw():
            return threedie_pairs(root, args.split, num_epochs=None, batch_size=args.batch_size, check_files=False)

        def via_tfds():
            return tfds_pairs(tfds_dir, args.split, num_epochs=None, batch_size=args.batch_size)

        best = {"raw files": 0.0, "tfds": 0.0}
        for _ in range(args.repeats):
            for name, make in (("raw files", raw), ("tfds", via_tfds)):
                best[name] = max(best[name], time_pairs(make, args.batch_size, args.warmup, args.batches))
        print(f"tf {tf.__version__}, {os.cpu_count()} CPU cores, batch {args.batch_size}, {args.batches} batches")
        for name, rate in best.items():
            print(f"  {name:10s} {rate:8.0f} pairs/s")


if __name__ == "__main__":
    main()
