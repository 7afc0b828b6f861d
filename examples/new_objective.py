"""A new equivariance objective in one file: define it, and it is registered, configurable and trained.

What it shows: subclass `keras_eqssl.Objective` with a `short_name`; the class statement adds it
to `keras_eqssl.OBJECTIVES`, the training config gains `config.model.<short_name>` (its
constructor's arguments, checked against `choices`), and a `PairModel` trains it next to an
invariance loss, logging its terms. The objective here, `view_map`, learns a linear map that
takes view 1's equivariant vector to view 2's. It is a toy: on its own a constant equivariant
vector would satisfy it, so a real objective also needs a term against that collapse.

    python examples/new_objective.py            # 50 steps on crops of scikit-image's photos
    python examples/new_objective.py --tiny     # a tiny network, 3 steps (seconds)

The training job turns it on with `config.model.view_map.enabled=True` once the module defining
it is imported (docs/guide/custom_objective.md).
"""

from __future__ import annotations

import argparse

import keras
from keras import ops

import keras_eqssl as eq
from keras_eqssl.default_config import get_config


@keras.saving.register_keras_serializable(package="examples")  # so .keras files of the model load back
class ViewMap(eq.Objective):
    """Predicts view 2's equivariant vector from view 1's with one Dense layer (MSE or L1)."""

    short_name = "view_map"  # registry key, config section and metric name
    choices = {"distance": ("mse", "l1")}  # checked by config validation

    def __init__(self, weight: float = 1.0, distance: str = "mse", **kwargs):
        super().__init__(weight=weight, **kwargs)
        self.distance = distance

    def setup(self, context):
        """Called once by the model: build the heads for its sizes (`context.equivariant_dim`, ...)."""
        super().setup(context)
        self.map = keras.layers.Dense(context.equivariant_dim, name="map")
        self.map.build((None, context.equivariant_dim))

    def term_names(self):
        return ["total", "gap"]

    def call(self, pair, training=None):
        diff = self.map(pair["equivariant"]["v1"]) - pair["equivariant"]["v2"]
        loss = ops.mean(ops.square(diff)) if self.distance == "mse" else ops.mean(ops.abs(diff))
        return {"total": ops.cast(loss, "float32"), "gap": ops.cast(ops.mean(ops.abs(diff)), "float32")}

    def get_config(self):
        return {**super().get_config(), "distance": self.distance}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--tiny", action="store_true", help="a tiny network and 3 steps")
    args = parser.parse_args()
    size, width, batch, steps = (16, 0.0625, 8, 3) if args.tiny else (32, 0.25, 32, args.steps)
    keras.utils.set_random_seed(0)

    # Registered by the class statement, with a config section built from __init__'s arguments.
    print("registered:", eq.OBJECTIVES["view_map"].__name__)
    print("config section:", get_config().model.view_map.to_dict())

    images = eq.skimage_photos(image_size=size, num_images=256).repeat()
    batches = eq.view_batches(images, eq.simclr(size), batch_size=batch, seed=0)
    backbone = eq.backbone_from_name("resnet18", stem="cifar", width=width)
    half = backbone.feature_dim // 2
    model = eq.PairModel(
        backbone, eq.VICReg(projector_units=[2 * half, 2 * half]), objectives=[ViewMap(weight=1.0)],
        split=(half, half), image_size=size,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = model.fit(batches, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0 if args.tiny else "auto")
    print("terms after the last step:", {k: round(v[-1], 4) for k, v in history.history.items()})


if __name__ == "__main__":
    main()
