"""What objectives may know about the model they join: shapes, the split and the recorded parameters."""

from __future__ import annotations

import dataclasses

from keras_eqssl.augment.base import ParamSpec

# Targets every 3DIEBench-format pair carries at the top level of the batch (see data/threedie.py).
RELATIVE_SPECS = {
    "rel_rotation": ParamSpec(
        "rel_rotation", (4,), "continuous", -1.0, 1.0, names=("qx", "qy", "qz", "qw"), doc="quaternion of R1^-1 R2"
    ),
    "rel_color": ParamSpec(
        "rel_color", (2,), "continuous", -1.0, 1.0, names=("floor_hue", "light_hue"), doc="hue differences"
    ),
}


@dataclasses.dataclass(frozen=True)
class ModelContext:
    """The facts `PairModel` hands each objective at construction.

    Attributes:
        image_size: (H, W) of the views the model trains on.
        grid_size: (h, w) of the backbone's feature map at that size.
        has_spatial_map: whether the backbone returns more than one token.
        feature_dim: C, the backbone's channels.
        invariant_dim, equivariant_dim: the split (both C without a split).
        param_specs: view name -> the `ParamSpec`s the augmentation policy records, or None when
            no policy runs (then only the relative 3DIEBench targets can be predicted).
    """

    image_size: tuple[int, int]
    grid_size: tuple[int, int]
    has_spatial_map: bool
    feature_dim: int
    invariant_dim: int
    equivariant_dim: int
    param_specs: dict[str, list[ParamSpec]] | None = None
