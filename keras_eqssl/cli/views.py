"""Draws a batch of images and their augmented views, with each view's recorded parameters.

keras-eqssl-views --config=configs/simclr.py --out=views.png
keras-eqssl-views --config=configs/gtsa.py --out=gtsa.png --rows=3
"""

from __future__ import annotations

from absl import app, flags

from keras_eqssl.cli._config import checked, define_config_flag, parse_flags
from keras_eqssl.cli._quiet import start_tensorflow

start_tensorflow()  # before anything imports it: no CUDA probe lines on a machine without a GPU


_CONFIG = define_config_flag()
_OUT = flags.DEFINE_string("out", "views.png", "Where to write the PNG.")
_ROWS = flags.DEFINE_integer("rows", 4, "Number of source images shown.")
_STEP = flags.DEFINE_integer("step", 0, "Which batch (step) of the pipeline to draw.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = checked(_CONFIG)

    from keras_eqssl.augment.augmix import AUGMIX_ALL_OPS
    from keras_eqssl.augment.policies import policy_from_config
    from keras_eqssl.data import source_from_config
    from keras_eqssl.viz import draw_views_grid

    policy = policy_from_config(config.augment)
    if config.data.source == "threedie":  # the policy's views of renders (first view of each pair)
        from keras_eqssl.data.threedie import threedie_pairs
        from keras_eqssl.data.train_batches import threedie_root

        pairs = threedie_pairs(threedie_root(config), seed=config.seed, image_size=config.data.image_size)
        images = pairs.map(lambda e: {"image": e["views"]["v1"], "label": e["label"]})
    else:
        images = source_from_config(config)
    # Aligned-pair policies (STL) need an even batch; draw one more image if needed, show `rows`.
    batch = next(iter(images.batch(_ROWS.value + _ROWS.value % 2)))
    views, params = policy(batch["image"], seed=config.seed, step=_STEP.value)
    title = f"policy={config.augment.policy}  seed={config.seed}  step={_STEP.value}"
    specs = [s for view_specs in policy.param_specs().values() for s in view_specs if s.key == "augmix_ops"]
    all_ops = any(s.high == len(AUGMIX_ALL_OPS) for s in specs)  # the unused-step index is the op list's length
    path = draw_views_grid(
        batch["image"].numpy(), views, params, _OUT.value, rows=_ROWS.value, title=title, augmix_all_ops=all_ops
    )
    print(f"wrote {path}: {_ROWS.value} images x {len(views)} views ({', '.join(views)})")


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
