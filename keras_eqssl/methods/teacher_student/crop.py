"""GTSA's crop term: the student's and the rotated teacher's RoIAlign of the region two crops share."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_eqssl.losses.roi_cosine import roi_cosine
from keras_eqssl.methods.registry import parse_units
from keras_eqssl.methods.teacher_student.term import TeacherStudentTerm, TermContext, ViewPair

# GTSA's RoIAlign grid for a 14 x 14 (global) and a 6 x 6 (local) student map: scaled to other grids.
_ROI_PER_GRID = (10 / 14, 4 / 6)


@keras.saving.register_keras_serializable(package="keras_eqssl")
class CropTerm(TeacherStudentTerm):
    """GTSA's crop loss (`crop`): `roi_cosine` of the student's predictor map of view v and the
    teacher's projector map of global view q over the region they share, the teacher's RoIAlign
    turned by the difference of their quarter turns; averaged over the (q, v) pairs.

    Reads `params[v]["overlap"]` `(B, V, 4)`, `["overlap_valid"]` `(B, V)` and `["rot90"]` `(B, 1)`.

    Args:
        weight: its weight in the total.
        roi_sizes: `(global, local)` RoIAlign grid sides; None or `""` scales GTSA's (10, 4) for
            14 x 14 and 6 x 6 maps to the model's grids.
        sampling_ratio: RoIAlign samples per bin and axis; -1 (GTSA's, torchvision's default):
            `ceil(box side in cells / grid side)` per box, see `roi_align`.

    >>> term = CropTerm(roi_sizes="5-2")
    >>> term.short_name, term.roi_sizes, term.needs_dense_heads
    ('crop', (5, 2), True)
    """

    short_name = "crop"
    config_defaults = {"roi_sizes": ""}
    views_params = ("overlap", "overlap_valid", "rot90")
    needs_teacher = True
    needs_dense_heads = True

    def __init__(
        self, weight: float = 1.0, roi_sizes: Sequence[int] | str | None = None, sampling_ratio: int = -1, **kwargs
    ):
        super().__init__(weight, **kwargs)
        if (
            isinstance(sampling_ratio, bool)
            or int(sampling_ratio) != sampling_ratio
            or not (int(sampling_ratio) >= 1 or int(sampling_ratio) == -1)
        ):
            raise ValueError(f"CropTerm: sampling_ratio must be an int >= 1 or -1; received {sampling_ratio!r}")
        roi_sizes = tuple(parse_units(roi_sizes or ()))
        if roi_sizes and (len(roi_sizes) != 2 or min(roi_sizes) < 1):
            raise ValueError(f"CropTerm: roi_sizes must be two ints >= 1 (global, local); received {roi_sizes}")
        self.roi_sizes = roi_sizes or None
        self.sampling_ratio = int(sampling_ratio)

    @classmethod
    def config_rules(cls) -> dict:
        return {
            "roi_sizes": lambda v: (
                "must be two ints >= 1 as 'global-local', or '' for GTSA's sizes scaled to the grid"
                if v and (len(parse_units(v)) != 2 or min(parse_units(v)) < 1)
                else None
            ),
            "sampling_ratio": lambda v: (
                "must be an int >= 1, or -1 for torchvision's adaptive count" if v != -1 and (int(v) != v or v < 1)
                else None
            ),
        }  # fmt: skip

    def setup(self, context: TermContext) -> None:
        if self.roi_sizes is None:
            self.roi_sizes = tuple(max(1, round(g[0] * r)) for g, r in zip(context.grids, _ROI_PER_GRID))

    def pair_loss(self, pair: ViewPair):
        params, names, q, v = pair.params, pair.names, pair.q, pair.v
        turns = ops.cast(params[v]["rot90"], "int32") - ops.cast(params[q]["rot90"], "int32")
        return roi_cosine(
            pair.student_map,
            pair.teacher_map,
            params[v]["overlap"][:, names.index(q)],
            params[q]["overlap"][:, names.index(v)],
            turns,
            valid=params[v]["overlap_valid"][:, names.index(q)],
            output_size=self.roi_sizes[0 if pair.is_global else 1],
            sampling_ratio=self.sampling_ratio,
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "roi_sizes": list(self.roi_sizes) if self.roi_sizes else None,
            "sampling_ratio": self.sampling_ratio,
        }
