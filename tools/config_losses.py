"""Trains every config file of a folder a few steps at a small size and records each step's losses.

A refactoring of the methods must not change what they compute. This tool runs each config of
`--configs` (default `configs/`) through the training job (`keras_eqssl.cli.train.train`) with the
same small overrides (a few steps, one step per epoch, a small batch and a small rendered
mini-3DIEBench, no evaluation), and writes every logged term of every step, plus a digest of the
trained weights, to a JSON file. `--against OLD.json` compares the new figures with earlier ones,
config by config: bit-identical, or the largest difference.

    .venv/bin/python tools/config_losses.py --out=/tmp/after.json
    .venv/bin/python tools/config_losses.py --out=/tmp/after.json --against=/tmp/before.json
    .venv/bin/python tools/config_losses.py --only=stl --set=model.width=0.25 --set=augment.size=32 --out=/tmp/stl.json
    # the figures of an older checkout (its own package and configs):
    PYTHONPATH=../old .venv/bin/python tools/config_losses.py --configs=../old/configs --out=/tmp/before.json

Overrides (the same in both runs): `train.steps`, `train.checkpoint_every=1`, `data.batch_size`,
`data.threedie.num_objects=24` with `views=4`, `eval.enabled=False`, progress off.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(path: pathlib.Path):
    """`get_config()` of a config file."""
    spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.parent))  # configs may import their folder's package (configs.common)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent.parent))
    return module.get_config()


def shrink(config, workdir: str, cache_dir: str, steps: int, batch: int, overrides=()):
    """The overrides every config gets (see the module doc), then `overrides` ("key=value" strings)."""
    config.workdir = workdir
    config.train.steps = steps
    config.train.checkpoint_every = 1
    config.train.image_every = 0
    config.train.progress = False
    config.data.batch_size = batch
    config.data.threedie.num_objects = 24
    config.data.threedie.views = 4
    config.data.threedie.cache_dir = cache_dir
    config.eval.enabled = False
    config.eval.random_init = False
    for item in overrides:
        key, value = item.split("=", 1)
        *path, last = key.split(".")
        section = config
        for name in path:
            section = section[name]
        section[last] = type(section[last])(ast.literal_eval(value))
    return config


def weights_digest(path: str) -> str:
    """SHA-256 over the sorted digests of every weight of the saved model: bit-level equality of the
    trained weights, whatever order or names a refactoring gives the layers."""
    import keras

    model = keras.models.load_model(path, compile=False)
    each = sorted(hashlib.sha256(keras.ops.convert_to_numpy(w).tobytes()).hexdigest() for w in model.weights)
    return hashlib.sha256("".join(each).encode()).hexdigest()


def run_config(path: pathlib.Path, steps: int, batch: int, cache_dir: str, overrides=()) -> dict:
    """Trains one config; its history (term -> value per step) and the weights' digest."""
    from keras_eqssl.cli.train import train

    with tempfile.TemporaryDirectory() as workdir:
        config = shrink(load_config(path), workdir, cache_dir, steps, batch, overrides)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = train(config)
        return {
            "history": metrics["history"],
            "weights": weights_digest(metrics["model"]),
            "seconds": round(time.perf_counter() - start, 1),
        }


def compare(before: dict, after: dict, names=None) -> list[str]:
    """One line per config (of `names`, default all): identical, or the largest difference and where."""
    lines = []
    for name in sorted(names or set(before) | set(after)):
        if name not in before or name not in after:
            lines.append(f"{name:16s} only in {'after' if name in after else 'before'}")
            continue
        b, a = before[name]["history"], after[name]["history"]
        if set(b) != set(a):
            lines.append(f"{name:16s} terms differ: before {sorted(b)}, after {sorted(a)}")
        worst, where = 0.0, ""
        for term in sorted(set(a) & set(b)):
            for step, (x, y) in enumerate(zip(b[term], a[term])):
                if x != y and abs(x - y) >= worst:
                    worst, where = abs(x - y), f"{term} step {step + 1}"
        same_weights = before[name]["weights"] == after[name]["weights"]
        losses = "losses bit-identical" if not where else f"largest loss difference {worst:.3g} ({where})"
        weights = "weights bit-identical" if same_weights else "weights differ"
        lines.append(f"{name:16s} {losses}; {weights}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=str(ROOT / "configs"), help="folder of config files")
    parser.add_argument("--only", default="", help="comma-separated config names (default: all)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--set", action="append", default=[], help="key=value override, e.g. model.width=0.25")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--against", default="", help="an earlier --out file to compare with")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    only = {n for n in args.only.split(",") if n}
    paths = sorted(
        p for p in pathlib.Path(args.configs).glob("*.py") if p.stem != "common" and not p.stem.startswith("_")
    )
    results = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for path in paths:
            if only and path.stem not in only:
                continue
            results[path.stem] = run_config(path, args.steps, args.batch, cache_dir, args.set)
            final = {k: round(v[-1], 6) for k, v in results[path.stem]["history"].items()}
            print(f"{path.stem:16s} {results[path.stem]['seconds']:6.1f} s  {final}", flush=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
    if args.against:
        print("\n".join(compare(json.loads(pathlib.Path(args.against).read_text()), results, only or None)))


if __name__ == "__main__":
    main()
