"""The part base of `TeacherStudentModel`: a loss term that owns its heads and registers itself by `short_name`."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from keras_eqssl.methods.objectives.base import check_non_negative
from keras_eqssl.methods.registry import ConfigSection

GLOBAL_VIEWS = ("g1", "g2")  # the teacher's views; the student also sees the local views l1..lN

# short_name -> TeacherStudentTerm subclass, in import order: the order a config's parts build their heads in
# and sum their terms in.
TERMS: dict[str, type] = {}


@dataclass(frozen=True)
class TermContext:
    """What a part learns from its model when it builds its heads (`TeacherStudentTerm.setup`).

    Args:
        feature_dim: C, the width of the backbone's tokens.
        grids: `((h, w) global, (h, w) local)` patch grids of the student.
        projection_units: P, the channels of the dense heads' maps (0 when no part asked for them).
        dtype: the model's dtype policy, for the heads.
    """

    feature_dim: int
    grids: tuple
    projection_units: int
    dtype: object


@dataclass(frozen=True)
class StepInputs:
    """What a part's `terms` reads in one step.

    Args:
        names: the views `g1`, `g2`, `l1`..`lN`.
        student: view -> the student backbone's outputs (`tokens` `(B, N, C)`, `feature_map`).
        teacher: global view -> the teacher's stop-gradient outputs (`tokens`, and `projection`
            when dense heads run), or None when no part needs the teacher.
        params: the batch's `params` (view -> `rot90`, `overlap`, `overlap_valid`).
    """

    names: list
    student: dict
    teacher: dict | None
    params: dict


@dataclass(frozen=True)
class ViewPair:
    """One (teacher global view q, student view v != q) pair of the dense terms.

    Args:
        q, v: the two view names; `names` all views, in the policy's order.
        is_global: whether v is a global view.
        student_map: the student's predictor map of v `(B, h, w, P)`.
        teacher_map: the teacher's projector map of q `(B, H, W, P)`.
        teacher_tokens: the same as `(B, H * W, P)`.
        params: the batch's `params`.
    """

    q: str
    v: str
    names: list
    is_global: bool
    student_map: object
    teacher_map: object
    teacher_tokens: object
    params: dict


@keras.saving.register_keras_serializable(package="keras_eqssl")
class TeacherStudentTerm(ConfigSection, keras.layers.Layer):
    """A loss term of `TeacherStudentModel`, times `weight`; it owns its heads and its arguments.

    A subclass sets `short_name` (the registry key, the config section
    `config.model.teacher_student.<short_name>` built from its constructor, and its main term's
    metric) and says what it needs:

    - `views_params`: the `params[v]` keys of every view it reads (e.g. `rot90`);
    - `needs_teacher`: the teacher's encodings of the global views;
    - `needs_dense_heads`: the conv projector / predictor on the student's patch grid, which
      `pair_loss` then sees for every (teacher global view, student view) pair (the model
      averages them over the pairs);
    - `setup(context)`: builds its heads (`TermContext`); `ema_pairs()` the teacher copies of
      them (made by `make_teacher()`, after the model's teacher);
    - `terms(inputs, training)`: its named terms from `StepInputs` (other than pairwise terms);
    - `weight_at(step)`: its weight in the total at an optimizer step (default `weight`).

    Its config section (`ConfigSection`) holds every constructor argument; weight 0 = the part
    is off. `config_rules()` checks the section's values, `config_problems(config)` the run config.
    """

    registry = TERMS
    resume_apply: tuple[str, ...] = ()  # a weight turns heads on or off: resuming refuses a new one
    views_params: tuple[str, ...] = ()
    needs_teacher = False
    needs_dense_heads = False

    @classmethod
    def config_rules(cls) -> dict:
        """Argument -> a check of its config value (a message, or None), beyond those config validation
        derives from the names of a section's arguments (weights, momenta, units strings)."""
        return {}

    # --- the layer ----------------------------------------------------------------------------

    def __init__(self, weight: float = 1.0, **kwargs):
        kwargs.setdefault("name", self.short_name)
        super().__init__(**kwargs)
        check_non_negative(type(self).__name__, weight=weight)
        self.weight = float(weight)

    def term_names(self) -> list[str]:
        """The terms it reports; the first (`short_name`) is the one the total weighs."""
        return [self.short_name]

    def setup(self, context: TermContext) -> None:
        """Builds its heads; raises ValueError if it cannot run on this model."""

    def make_teacher(self) -> None:
        """Makes the EMA copies of its heads (none by default)."""

    def ema_pairs(self) -> list[tuple]:
        """(teacher layer, online layer) pairs of its heads (none by default)."""
        return []

    def weight_at(self, step):
        """Its weight in the total after `step` optimizer steps (None: no optimizer yet)."""
        return self.weight

    def pair_loss(self, pair: ViewPair):
        """Its loss on one `ViewPair` (a part with `needs_dense_heads`)."""
        raise NotImplementedError(f"{type(self).__name__} has no pairwise loss")

    def terms(self, inputs: StepInputs, training=False) -> dict:
        """Its named terms from one step's `StepInputs` (a part without `needs_dense_heads`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement terms(inputs, training)")

    def build(self, input_shape=None):
        pass  # built by `setup`, which knows the shapes

    def build_from_config(self, config):
        pass  # the model builds it with the shapes it knows (when loading too)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight}
