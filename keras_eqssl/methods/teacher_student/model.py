"""TeacherStudentModel: a student backbone and its EMA teacher on multi-crops, trained by registered loss parts."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_eqssl.losses.ema import byol_momentum, ema_copy
from keras_eqssl.methods.ssl_model import IMAGENET_MEAN, IMAGENET_STD, REPRESENTATION_KEYS, SSLModel
from keras_eqssl.methods.teacher_student import run_config
from keras_eqssl.methods.teacher_student.batch_check import check_batch
from keras_eqssl.methods.teacher_student.rotation import mean_tokens
from keras_eqssl.methods.teacher_student.term import (
    GLOBAL_VIEWS,
    StepInputs,
    TeacherStudentTerm,
    TermContext,
    ViewPair,
)
from keras_eqssl.nn.backbone import Backbone
from keras_eqssl.nn.conv_projector import ConvPredictor, ConvProjector
from keras_eqssl.nn.transformer_encoder_block import TransformerEncoderBlock


def _without_drop_path(network) -> None:
    """Turns stochastic depth off in every block of `network`: GTSA's (and DINO's) teacher runs them all."""
    if getattr(network, "drop_path_rate", 0.0):
        network.drop_path_rate = 0.0
        for layer in network.layers:
            if isinstance(layer, TransformerEncoderBlock):
                layer.drop_path_rate = 0.0


def _check_grids(backbone: Backbone, image_size: int, local_size: int, num_local: int) -> tuple:
    """The student's `(global, local)` patch grids, or a `ValueError` when they do not cover the views."""
    grids = (backbone.grid_size(image_size), backbone.grid_size(local_size))
    used = slice(0, 2 if num_local else 1)
    stride = backbone.feature_stride or 1
    # A ResNet's map covers every pixel (its grid rounds up); a ViT's drops a side's last size % patch px.
    cut = any(g[0] * stride < s for g, s in zip(grids[used], (image_size, local_size)[used]))
    if min(min(g) for g in grids[used]) < 1 or cut or not backbone.has_spatial_map:
        raise ValueError(
            f"TeacherStudentModel: {backbone.name} gives patch grids {grids[0]} (global, {image_size} px) and "
            f"{grids[1]} (local, {local_size} px) of {stride} px cells; its parts need a spatial map at both sizes "
            "that covers the whole view (a ViT: sizes that are multiples of its patch size)"
        )
    return grids


@keras.saving.register_keras_serializable(package="keras_eqssl")
class TeacherStudentModel(SSLModel):
    """A student backbone and its EMA teacher on multi-crops, trained by the sum of its parts' weighted terms.

    The batch (from `MultiCropPolicy`, `config.augment.policy="gtsa"`): views `g1`, `g2`
    `(B, S, S, 3)` and `l1`..`lN` `(B, s, s, 3)`, with the `params[v]` its parts read (GTSA's:
    quarter turns `rot90` `(B, 1)`, the region view v shares with every view `overlap`
    `(B, V, 4)` and `overlap_valid` `(B, V)`).

    The student backbone sees all views (one call per view size); the teacher (an EMA copy of it,
    momentum `teacher_base_momentum` -> 1 on a cosine, without the student's stochastic depth)
    sees the two global views when a part needs it. A part with `needs_dense_heads` gets a conv
    projector and predictor on the student's patch grid (and a teacher projector), shared with
    the other such parts, and its `pair_loss` is averaged over the 2 (N + 1) (teacher global
    view, other student view) pairs. The total is the sum of weight x term over the parts.

    Parts (`keras_eqssl.methods.teacher_student.TERMS`): `CropTerm`, `CorrespondenceTerm` and
    `RotationTerm` make GTSA (Kim et al., 2023, "Self-Supervised Learning from Non-Object Centric
    Images with a Geometric Transformation Sensitive Architecture"); `DINOTerm` alone, with
    upright crops, its DINO-like baseline.

    Metrics: `loss` and each part's terms (`crop`, `correspondence`, `rotation`,
    `rotation_accuracy`, `dino`). Calling the model on images `(N, H, W, 3)` returns the mean of
    the patch tokens `(N, C)` as `embedding` (also `invariant` and `equivariant`): what export serves.

    Args:
        backbone: a `Backbone` with a spatial map (GTSA: ViT-S/16; `vit_tiny` for tests).
        parts: the `TeacherStudentTerm`s, each with a weight > 0; their heads are built in this order.
        num_local: N, the local views `l1`..`lN`.
        image_size: side of the global views.
        local_size: side of the local views.
        projection_units: channels of the dense heads' maps (None: 2 x C).
        mean, std, total_steps, teacher_base_momentum: see `SSLModel`.

    >>> import numpy as np
    >>> from keras_eqssl.augment.policies import MultiCropPolicy
    >>> from keras_eqssl.methods import CorrespondenceTerm, CropTerm, RotationTerm, TeacherStudentModel
    >>> from keras_eqssl.nn import VIT_PRESETS, VisionTransformer
    >>> policy = MultiCropPolicy(global_size=32, local_size=16, num_local=2)
    >>> images = np.random.default_rng(0).random((4, 64, 64, 3)).astype("float32")
    >>> views, params = policy(images)
    >>> parts = [CropTerm(), CorrespondenceTerm(), RotationTerm()]
    >>> model = TeacherStudentModel(
    ...     VisionTransformer(**VIT_PRESETS["vit_tiny"]), parts, num_local=2, image_size=32, local_size=16
    ... )
    >>> total, terms = model.compute_losses({"views": views, "params": params})
    >>> sorted(terms)
    ['correspondence', 'crop', 'rotation', 'rotation_accuracy']
    >>> tuple(model(views["g1"])["embedding"].shape)
    (4, 32)
    """

    kind = "teacher_student"

    def __init__(
        self,
        backbone: Backbone,
        parts: Sequence[TeacherStudentTerm],
        num_local: int = 8,
        image_size: int = 224,
        local_size: int = 96,
        projection_units: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        total_steps: int | None = None,
        teacher_base_momentum: float = 0.996,
        **kwargs,
    ):
        if not isinstance(image_size, int):
            sizes = {int(s) for s in image_size}
            if len(sizes) != 1:
                raise ValueError(f"TeacherStudentModel: global views are square; received image_size={image_size}")
            image_size = sizes.pop()
        super().__init__(
            backbone,
            image_size=image_size,
            mean=mean,
            std=std,
            total_steps=total_steps,
            teacher_base_momentum=teacher_base_momentum,
            **kwargs,
        )
        parts = list(parts)
        self._check_parts(parts)
        if int(num_local) < 0:
            raise ValueError(f"TeacherStudentModel: num_local must be >= 0; received {num_local}")
        self.num_local = int(num_local)
        self.local_size = int(local_size)
        grids = _check_grids(backbone, image_size, self.local_size, self.num_local)
        dim = backbone.feature_dim
        self.projection_units = int(projection_units or 2 * dim)
        self._grids = grids
        self._build_dense_heads(any(p.needs_dense_heads for p in parts))
        context = TermContext(dim, grids, self.projection_units if self.projector else 0, self.dtype_policy)
        for part in parts:
            part.setup(context)
            part.built = True
        self.parts = parts
        self._build_teacher()
        self.track_terms()

    @staticmethod
    def _check_parts(parts: list) -> None:
        names = [getattr(p, "short_name", type(p).__name__) for p in parts]
        wrong = any(not isinstance(p, TeacherStudentTerm) or not p.weight > 0 for p in parts)
        if wrong or not parts or len(set(names)) != len(names):
            weights = {n: getattr(p, "weight", None) for n, p in zip(names, parts)}
            raise ValueError(
                "TeacherStudentModel: parts must be TeacherStudentTerms, at least one, each once, with loss "
                f"weights > 0 (leave a part out to turn it off); received {weights}"
            )

    def _build_dense_heads(self, needed: bool) -> None:
        """The conv projector and predictor on the student's patch grid, when a part asks for them."""
        self.projector = self.predictor = self.teacher_projector = None
        if not needed:
            return
        dim, policy = self.backbone.feature_dim, self.dtype_policy
        self.projector = ConvProjector(dim, self.projection_units, name="projector", dtype=policy)
        self.projector.build((None, None, None, dim))
        self.predictor = ConvPredictor(self.projection_units, name="predictor", dtype=policy)
        self.predictor.build((None, None, None, self.projection_units))

    def _build_teacher(self) -> None:
        """The EMA copies: the backbone (without stochastic depth), the projector, then the parts' heads."""
        self.teacher_backbone = ema_copy(self.backbone, f"teacher_{self.backbone.name}")
        _without_drop_path(self.teacher_backbone)
        if self.projector is not None:
            self.teacher_projector = ema_copy(self.projector, "teacher_projector")
        for part in self.parts:
            part.make_teacher()

    # --- what a part reads --------------------------------------------------------------------

    def part(self, short_name: str) -> TeacherStudentTerm:
        """The part registered as `short_name` (e.g. `"rotation"`)."""
        found = [p for p in self.parts if p.short_name == short_name]
        if not found:
            raise KeyError(
                f"TeacherStudentModel has no part {short_name!r}; it has {[p.short_name for p in self.parts]}"
            )
        return found[0]

    def view_names(self) -> list[str]:
        """`g1`, `g2`, `l1`..`lN`: the views of `MultiCropPolicy`, in its order."""
        return [*GLOBAL_VIEWS, *(f"l{i + 1}" for i in range(self.num_local))]

    def term_names(self) -> list[str]:
        return [name for part in self.parts for name in part.term_names()]

    def representation(self, outputs: dict) -> dict:
        pooled = mean_tokens(outputs)
        return {k: pooled for k in REPRESENTATION_KEYS}

    def ema_pairs(self) -> list[tuple]:
        pairs = [(self.teacher_backbone, self.backbone)]
        if self.teacher_projector is not None:
            pairs.append((self.teacher_projector, self.projector))
        return pairs + [pair for part in self.parts for pair in part.ema_pairs()]

    def teacher_momentum(self):
        """tau(k + 1) for the update that follows optimizer step k: GTSA's code moves the teacher at the
        start of step k + 1, with that step's momentum, towards the weights step k made; the teacher a
        step sees is the same here, updated right after the optimizer instead."""
        if self.total_steps is None:
            return super().teacher_momentum()
        return byol_momentum(self.optimizer.iterations + 1, self.total_steps, self.teacher_base_momentum)

    # --- one step -----------------------------------------------------------------------------

    def _view_groups(self) -> list[list[str]]:
        """The views that share a size: the global ones, then the local ones (when there are any)."""
        return [group for group in (list(GLOBAL_VIEWS), self.view_names()[2:]) if group]

    def _student(self, views: dict, training) -> dict:
        """View -> the backbone's outputs; the global views in one call, the local views in another."""
        out = {}
        for group in self._view_groups():
            out.update(self.encode_together(self.backbone, views, group, training))
        return out

    def _dense_heads(self, student: dict, training) -> dict:
        """View -> the predictor map `(B, h, w, P)` on the projector on the student's patch grid."""

        def heads(maps, training):
            return {"prediction": self.predictor(self.projector(maps, training=training), training=training)}

        maps = {v: out["feature_map"] for v, out in student.items()}
        predictions = {}
        for group in self._view_groups():
            predictions.update(self.encode_together(heads, maps, group, training))
        return {v: out["prediction"] for v, out in predictions.items()}

    def _teacher(self, views: dict, training) -> dict:
        """Global view -> the teacher's (stop-gradient) outputs: `tokens`, and `projection` with dense heads."""

        def teacher(images, training):
            parts = self.teacher_backbone(images, training=training)
            parts = {"tokens": parts["tokens"], "feature_map": parts["feature_map"]}
            if self.teacher_projector is not None:
                parts["projection"] = self.teacher_projector(parts["feature_map"], training=training)
            return {k: ops.stop_gradient(t) for k, t in parts.items()}

        return self.encode_together(teacher, views, list(GLOBAL_VIEWS), training)

    def _pair_terms(self, parts: list, params: dict, predictions: dict, teacher: dict) -> dict:
        """Each pairwise part's loss averaged over the (teacher global view, other student view) pairs."""
        names = self.view_names()
        sums, pairs = {p.short_name: 0.0 for p in parts}, 0
        for q in GLOBAL_VIEWS:
            t_map = teacher[q]["projection"]
            t_tokens = ops.reshape(t_map, (ops.shape(t_map)[0], -1, self.projection_units))
            for v in names:
                if v == q:
                    continue
                pairs += 1
                pair = ViewPair(q, v, names, v in GLOBAL_VIEWS, predictions[v], t_map, t_tokens, params)
                for part in parts:
                    sums[part.short_name] = sums[part.short_name] + part.pair_loss(pair)
        return {name: total / pairs for name, total in sums.items()}

    def _step(self):
        """The optimizer's step count, or None before `compile`."""
        optimizer = getattr(self, "optimizer", None)
        return None if optimizer is None else optimizer.iterations

    def _check_batch(self, batch) -> None:
        sides = {v: self.image_size[0] if v in GLOBAL_VIEWS else self.local_size for v in self.view_names()}
        check_batch(batch, sides, sorted({k for part in self.parts for k in part.views_params}))

    def compute_losses(self, batch: dict, training=False) -> tuple:
        self._check_batch(batch)
        names = self.view_names()
        views = {v: self.normalize(batch["views"][v]) for v in names}
        student = self._student(views, training)
        # a part that needs no teacher (rotation) skips its forward pass
        teacher = self._teacher(views, training) if any(p.needs_teacher for p in self.parts) else None
        terms = {}
        pairwise = [p for p in self.parts if p.needs_dense_heads]
        if pairwise:
            predictions = self._dense_heads(student, training)
            terms.update(self._pair_terms(pairwise, batch["params"], predictions, teacher))
        inputs = StepInputs(names, student, teacher, batch["params"])
        for part in self.parts:
            if not part.needs_dense_heads:
                terms.update(part.terms(inputs, training))
        total, step = 0.0, self._step()
        for part in self.parts:
            total = total + part.weight_at(step) * terms[part.short_name]
        return total, terms

    # --- the run config (the model kind's interface) --------------------------------------------

    config_section = classmethod(run_config.config_section)
    config_rules = classmethod(run_config.config_rules)
    config_problems = classmethod(run_config.config_problems)
    batch_problems = classmethod(run_config.batch_problems)
    resume_rules = classmethod(run_config.resume_rules)
    run_name = classmethod(run_config.run_name)
    from_run_config = classmethod(run_config.from_run_config)

    # --- serialisation ----------------------------------------------------------------------

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "parts": [keras.saving.serialize_keras_object(p) for p in self.parts],
            "image_size": self.image_size[0],
            "num_local": self.num_local,
            "local_size": self.local_size,
            "projection_units": self.projection_units,
            "teacher_base_momentum": self.teacher_base_momentum,
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["parts"] = [keras.saving.deserialize_keras_object(p) for p in config["parts"]]
        return super().from_config(config)
