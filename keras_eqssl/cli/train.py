"""The main job.

Training lands with the methods package (issue #4). Until then this app runs everything that
exists, honestly labelled: it streams the configured source through the augmentation policy in
a tf.data pipeline for `config.train.steps` batches, with a progress bar, checks every recorded
parameter is finite and inside its declared range, writes a picture of the first batch's views
and reports the pipeline's throughput. No model is trained.

    keras-eqssl-train                                   # embedded default: scikit-image photos, SimCLR views
    keras-eqssl-train --config=configs/stl.py --config.train.steps=10
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import app

from keras_eqssl.cli._config import checked, define_config_flag

_CONFIG = define_config_flag()


def _check_params(params, specs, step):
    """Raises if a recorded parameter is non-finite or outside its declared range."""
    for view, keyed in params.items():
        for spec in specs[view]:
            value = np.asarray(keyed[spec.key], dtype=np.float64)
            if not np.all(np.isfinite(value)):
                raise FloatingPointError(f"step {step}: params[{view!r}][{spec.key!r}] has non-finite values")
            lo = min(spec.low, 0.0) if spec.kind != "categorical" else spec.low  # identity values (e.g. sigma 0)
            hi = max(spec.high, 1.0) if spec.kind != "categorical" else spec.high
            if value.min() < lo - 1e-5 or value.max() > hi + 1e-5:
                raise ValueError(
                    f"step {step}: params[{view!r}][{spec.key!r}] in [{value.min():.3g}, {value.max():.3g}] "
                    f"outside its declared range [{spec.low}, {spec.high}]"
                )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = checked(_CONFIG)

    from tqdm import tqdm

    from keras_eqssl.augment.policies import policy_from_config
    from keras_eqssl.data import source_from_config, view_batches
    from keras_eqssl.viz import draw_views_grid

    policy = policy_from_config(config.augment)
    specs = policy.param_specs()
    source = source_from_config(config)
    batches = view_batches(source.repeat(), policy, config.data.batch_size, seed=config.seed)
    os.makedirs(config.workdir, exist_ok=True)

    print(
        "keras-eqssl-train: model training is not implemented yet (it lands with the methods package); "
        f"this run draws {config.train.steps} batches of '{config.augment.policy}' views from "
        f"'{config.data.source}' and checks their recorded parameters."
    )
    it = iter(batches)
    first = next(it)  # includes tracing; not timed
    _check_params(first["params"], specs, 0)
    start = time.perf_counter()
    bar = tqdm(range(1, config.train.steps), desc="views", unit="batch", disable=not config.train.progress)
    for step in bar:
        batch = next(it)
        _check_params(batch["params"], specs, step)
        bar.set_postfix(images_per_s=f"{step * config.data.batch_size / (time.perf_counter() - start):.0f}")
    elapsed = time.perf_counter() - start
    timed = (config.train.steps - 1) * config.data.batch_size

    sample = next(iter(source.batch(4)))
    views, params = policy(sample["image"], seed=config.seed, step=0)
    png = draw_views_grid(
        sample["image"].numpy(), views, params, os.path.join(config.workdir, "views.png"),
        title=f"policy={config.augment.policy}",
    )  # fmt: skip
    rate = f"{timed / elapsed:.0f} source images/s" if timed else "n/a (one batch)"
    print(
        f"drew {config.train.steps} batches x {config.data.batch_size} images; all recorded parameters finite and in range"
    )
    print(f"pipeline throughput: {rate} ({len(views)} views each, {config.augment.size}px)")
    print(f"views of the first batch: {png}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
