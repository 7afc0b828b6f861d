"""GTSA's patch-correspondence term, off for a warm-up of optimizer steps."""

from __future__ import annotations

import keras
from keras import ops

from keras_eqssl.losses.patch_correspondence import patch_correspondence
from keras_eqssl.methods.teacher_student.term import TeacherStudentTerm, TermContext, ViewPair


@keras.saving.register_keras_serializable(package="keras_eqssl")
class CorrespondenceTerm(TeacherStudentTerm):
    """GTSA's patch correspondence (`correspondence`): `patch_correspondence` of all student
    predictor tokens of view v and teacher projector tokens of global view q, keeping the
    `match_fraction` most confident matches; averaged over the (q, v) pairs. Its weight is 0 for
    the first `warmup_steps` optimizer steps (GTSA's warm-up).

    Args:
        weight: its weight in the total once the warm-up is over.
        warmup_steps: optimizer steps before it counts.
        match_fraction: kept matches as a fraction of the student's tokens (GTSA: 1/2).

    >>> term = CorrespondenceTerm(warmup_steps=2)
    >>> term.weight_at(None), float(term.weight_at(1)), float(term.weight_at(2))
    (0.5, 0.0, 0.5)
    """

    short_name = "correspondence"
    resume_apply = ("warmup_steps",)  # a schedule; configs/gtsa.py derives it from train.steps
    needs_teacher = True
    needs_dense_heads = True

    def __init__(self, weight: float = 0.5, warmup_steps: int = 0, match_fraction: float = 0.5, **kwargs):
        super().__init__(weight, **kwargs)
        if int(warmup_steps) < 0:
            raise ValueError(f"CorrespondenceTerm: warmup_steps must be >= 0; received {warmup_steps}")
        if not 0.0 < match_fraction <= 1.0:
            raise ValueError(f"CorrespondenceTerm: match_fraction must be in (0, 1]; received {match_fraction}")
        self.warmup_steps = int(warmup_steps)
        self.match_fraction = float(match_fraction)
        self.grids = None

    @classmethod
    def config_rules(cls) -> dict:
        from keras_eqssl.config_fields import non_negative_int

        return {
            "warmup_steps": non_negative_int,
            "match_fraction": lambda v: "must be in (0, 1]" if not 0 < v <= 1 else None,
        }

    def setup(self, context: TermContext) -> None:
        self.grids = context.grids

    def weight_at(self, step):
        """`weight` once `warmup_steps` optimizer steps are done, else 0 (`step` None: no optimizer, no gate)."""
        if not self.warmup_steps or step is None:
            return self.weight * 1.0
        return self.weight * ops.cast(step >= self.warmup_steps, "float32")

    def pair_loss(self, pair: ViewPair):
        grid = self.grids[0 if pair.is_global else 1]
        s_map = pair.student_map
        s_tokens = ops.reshape(s_map, (ops.shape(s_map)[0], -1, ops.shape(s_map)[-1]))
        k = max(1, int(grid[0] * grid[1] * self.match_fraction))
        return patch_correspondence(s_tokens, pair.teacher_tokens, k)

    def get_config(self) -> dict:
        return {**super().get_config(), "warmup_steps": self.warmup_steps, "match_fraction": self.match_fraction}
