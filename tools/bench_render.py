"""Throughput of the mini-3DIEBench renderer: images written to disk per second, at 64 and 128 px.

Each size renders `--objects` procedural objects x `--views` views into a fresh temporary root with
`--workers` processes (default: all cores), the way `keras-eqssl-render` does: mesh built and
uploaded once per object, MSAA 4x, shadow map, JPEG quality 95 + latent .npy per view. The time
covers the whole run (pool start-up included), from the first job to the last file written.

Usage:
    python tools/bench_render.py                     # 64 and 128 px, 40 objects x 50 views
    python tools/bench_render.py --sizes 128 --objects 12 --views 10 --workers 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    import keras_eqssl  # noqa: F401
except ImportError:  # run from a checkout that is not installed: `python tools/bench_render.py`
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from keras_eqssl.data.render import jobs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--objects", type=int, default=40)
    parser.add_argument("--views", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0, help="0 = all cores")
    parser.add_argument("--samples", type=int, default=4, help="MSAA samples")
    args = parser.parse_args()
    workers = args.workers or jobs.default_workers()
    print(f"{args.objects} objects x {args.views} views, {workers} workers, MSAA {args.samples}, JPEG q95")
    print(" size | images |    s   | images/s")
    print("------|--------|--------|---------")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            settings = jobs.Settings(root, args.views, size, seed=0, samples=args.samples)
            report = jobs.render_jobs(jobs.procedural_jobs(args.objects), settings, workers, progress=False)
        n = len(report.done) * args.views
        print(f" {size:4d} | {n:6d} | {report.seconds:6.2f} | {n / report.seconds:8.1f}")


if __name__ == "__main__":
    main()
