"""DINO's term: the centred, sharpened cross-entropy between teacher and student DINO heads on mean tokens."""

from __future__ import annotations

import keras
from keras import ops

from keras_eqssl.losses.dino import dino_center_update, dino_loss
from keras_eqssl.losses.ema import ema_copy
from keras_eqssl.methods.teacher_student.rotation import mean_tokens
from keras_eqssl.methods.teacher_student.term import GLOBAL_VIEWS, StepInputs, TeacherStudentTerm, TermContext
from keras_eqssl.nn.attribute_config import AttributeConfig
from keras_eqssl.nn.dino_head import DINOHead


@keras.saving.register_keras_serializable(package="keras_eqssl")
class DINOTerm(AttributeConfig, TeacherStudentTerm):
    """DINO's loss (`dino`; Caron et al., ICCV 2021): the DINO head (`head`) on the mean student
    token of every view against its EMA copy (`teacher_head`) on the teacher's global views, the
    teacher's logits centred by `center` and sharpened (`dino_loss`). Alone, with upright crops,
    it is GTSA's DINO-like baseline (`configs/gtsa_dino.py`).

    Args:
        weight: its weight in the total (off in GTSA's config).
        units, hidden_units, bottleneck_units: the DINO head's sizes.
        student_temperature, teacher_temperature: DINO's temperatures.
        center_momentum: the EMA momentum of the centre, moved in every training step.

    >>> DINOTerm(units=64).term_names()
    ['dino']
    """

    config_attributes = (
        "units",
        "hidden_units",
        "bottleneck_units",
        "student_temperature",
        "teacher_temperature",
        "center_momentum",
    )

    short_name = "dino"
    config_defaults = {"weight": 0.0}
    needs_teacher = True

    def __init__(
        self,
        weight: float = 1.0,
        units: int = 65536,
        hidden_units: int = 2048,
        bottleneck_units: int = 256,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        center_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(weight, **kwargs)
        self.units = int(units)
        self.hidden_units = int(hidden_units)
        self.bottleneck_units = int(bottleneck_units)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.center_momentum = float(center_momentum)
        self.head = self.teacher_head = self.center = None

    @classmethod
    def config_rules(cls) -> dict:
        from keras_eqssl.config_fields import positive_int

        positive = lambda v: "must be > 0" if v <= 0 else None  # noqa: E731
        sizes = {k: positive_int for k in ("units", "hidden_units", "bottleneck_units")}
        temperatures = {k: positive for k in ("student_temperature", "teacher_temperature")}
        return {**sizes, **temperatures}

    @classmethod
    def batch_problems(cls, per_replica_batch: int) -> list[str]:
        if per_replica_batch >= 2:
            return []
        return [
            "DINO (config.model.teacher_student.dino.weight > 0) needs at least 2 images per batch: its centre, "
            "which keeps the teacher from collapsing, moves towards the teacher's mean output over each batch's images"
        ]

    def setup(self, context: TermContext) -> None:
        self.head = DINOHead(
            self.units, self.hidden_units, self.bottleneck_units, name="dino_head", dtype=context.dtype
        )
        self.head.build((None, context.feature_dim))
        self.center = self.add_weight(
            shape=(self.units,), initializer="zeros", trainable=False, name="dino_center", dtype="float32"
        )

    def make_teacher(self) -> None:
        self.teacher_head = ema_copy(self.head, "teacher_dino_head")

    def ema_pairs(self) -> list[tuple]:
        return [(self.teacher_head, self.head)]

    def terms(self, inputs: StepInputs, training=False) -> dict:
        student_logits = [self.head(mean_tokens(inputs.student[v]), training=training) for v in inputs.names]
        teacher_logits = [
            ops.stop_gradient(self.teacher_head(mean_tokens(inputs.teacher[v]), training=training))
            for v in GLOBAL_VIEWS
        ]
        loss = dino_loss(
            student_logits,
            teacher_logits,
            self.center,
            student_temperature=self.student_temperature,
            teacher_temperature=self.teacher_temperature,
        )
        if training:
            dino_center_update(self.center, teacher_logits, self.center_momentum)
        return {"dino": loss}
