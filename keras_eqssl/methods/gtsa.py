"""GTSAModel: a student ViT and its EMA teacher on multi-crops, made sensitive to 90-degree rotations and crops."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from keras_eqssl.losses.dino import dino_center_update, dino_loss
from keras_eqssl.losses.ema import byol_momentum, ema_copy
from keras_eqssl.losses.patch_correspondence import patch_correspondence
from keras_eqssl.losses.roi_cosine import roi_cosine
from keras_eqssl.losses.rotation_prediction import rotation_prediction
from keras_eqssl.methods.ssl_model import IMAGENET_MEAN, IMAGENET_STD, REPRESENTATION_KEYS, SSLModel
from keras_eqssl.nn.backbone import Backbone
from keras_eqssl.nn.conv_projector import ConvPredictor, ConvProjector
from keras_eqssl.nn.dino_head import DINOHead
from keras_eqssl.nn.mlp import MLP
from keras_eqssl.nn.transformer_encoder_block import TransformerEncoderBlock

GLOBAL_VIEWS = ("g1", "g2")
# GTSA's RoIAlign grid for a 14 x 14 (global) and a 6 x 6 (local) student map: scaled to other grids.
_ROI_PER_GRID = (10 / 14, 4 / 6)
_POLICY_HINT = 'make the batches with config.augment.policy="gtsa" (MultiCropPolicy)'


def _mean_tokens(outputs: dict):
    return ops.mean(outputs["tokens"], axis=1)


def _without_drop_path(network) -> None:
    """Turns stochastic depth off in every block of `network`: GTSA's (and DINO's) teacher runs them all."""
    if getattr(network, "drop_path_rate", 0.0):
        network.drop_path_rate = 0.0
        for layer in network.layers:
            if isinstance(layer, TransformerEncoderBlock):
                layer.drop_path_rate = 0.0


def _torch_linear_init(head) -> None:
    """Re-draws every Dense of `head` as PyTorch's default `nn.Linear` (kernel and bias U(+-1/sqrt(fan_in))):
    GTSA's rotation head is a plain `nn.Sequential` that its `_init_weights` never visits."""
    for dense in (d for d in head._flatten_layers() if isinstance(d, keras.layers.Dense)):
        bound = float(dense.kernel.shape[0]) ** -0.5
        for weight in (dense.kernel, dense.bias):
            weight.assign(keras.initializers.RandomUniform(-bound, bound)(weight.shape, weight.dtype))


@keras.saving.register_keras_serializable(package="keras_eqssl")
class GTSAModel(SSLModel):
    """GTSA (Kim et al., 2023, "Self-Supervised Learning from Non-Object Centric Images with a Geometric
    Transformation Sensitive Architecture"): a student and an EMA teacher trained on multi-crops.

    The batch (from `MultiCropPolicy`, `config.augment.policy="gtsa"`): views `g1`, `g2`
    `(B, S, S, 3)` and `l1`..`lN` `(B, s, s, 3)`, each rotated by its own quarter turns
    `params[v]["rot90"]` `(B, 1)`, with `params[v]["overlap"]` `(B, V, 4)` (the region view v
    shares with every view, in v's rotated frame) and `params[v]["overlap_valid"]` `(B, V)`.

    The student backbone sees all views; a conv projector and a conv predictor run on its patch
    grid. The teacher (an EMA copy of the backbone and projector, momentum `teacher_base_momentum`
    -> 1 on a cosine, without the student's stochastic depth) sees the two global views. GTSA's
    student ViT drops paths at rate 0.1 (`VisionTransformer(drop_path_rate=0.1)`). For every
    (teacher global view q, student view v != q), 2 (N + 1) pairs:

    - crop loss (`crop_weight`): `roi_cosine` of the student's predictor map and the teacher's
      projector map over the region they share, the teacher's RoIAlign turned by the
      difference of the two rotations;
    - patch correspondence (`correspondence_weight`, 0 for the first
      `correspondence_warmup_steps` optimizer steps): `patch_correspondence` of all student
      and teacher tokens, keeping the `match_fraction` most confident matches;

    each averaged over the pairs, plus

    - rotation prediction (`rotation_weight`): a head on the mean student token of every view
      predicts its quarter turns (`rotation_prediction`);
    - DINO (`dino_weight`, off in GTSA): the DINO head on the mean tokens and DINO's centred,
      sharpened cross-entropy (`dino_loss`). With the three geometric weights at 0 and the
      `gtsa` policy's rotations off, this is the DINO-like baseline of `configs/gtsa_dino.py`.

    Metrics: `loss` and each enabled term (`crop`, `correspondence`, `rotation`,
    `rotation_accuracy`, `dino`). Calling the model on images returns the mean of the patch
    tokens as `embedding` (also `invariant` and `equivariant`): what export serves.

    Args:
        backbone: a `Backbone` with a spatial map (GTSA: ViT-S/16; `vit_tiny` for tests).
        num_local: N, the local views `l1`..`lN`.
        image_size: side of the global views.
        local_size: side of the local views.
        crop_weight, correspondence_weight, rotation_weight, dino_weight: loss weights.
        correspondence_warmup_steps: optimizer steps before the correspondence loss counts.
        roi_sizes: `(global, local)` RoIAlign grid sides; None scales GTSA's (10, 4) for 14 x 14
            and 6 x 6 maps to this backbone's grids.
        sampling_ratio: RoIAlign samples per bin and axis; -1 (GTSA's, torchvision's default):
            `ceil(box side in cells / grid side)` per box, see `roi_align`.
        match_fraction: kept matches as a fraction of the student's tokens (GTSA: 1/2).
        projection_units: channels of the projector's output and the predictor (None: 2 x C).
        rotation_units: hidden units of the rotation head (None: (2C, 2C, 128)); each hidden
            Dense is followed by a LayerNorm and, but for the last, a GELU; then a Dense(4). Its
            Dense layers start as PyTorch's default Linear, as GTSA's.
        dino_units, dino_hidden_units, dino_bottleneck_units: DINO head sizes.
        student_temperature, teacher_temperature, center_momentum: DINO's loss.
        mean, std, total_steps, teacher_base_momentum: see `SSLModel`.

    Example:

    ```python
    import numpy as np
    from keras_eqssl.augment.policies import MultiCropPolicy
    from keras_eqssl.methods import GTSAModel
    from keras_eqssl.nn import VIT_PRESETS, VisionTransformer

    policy = MultiCropPolicy(global_size=32, local_size=16, num_local=2)
    images = np.random.default_rng(0).random((4, 64, 64, 3)).astype("float32")
    views, params = policy(images)
    model = GTSAModel(VisionTransformer(**VIT_PRESETS["vit_tiny"]), num_local=2, image_size=32, local_size=16)
    total, terms = model.compute_losses({"views": views, "params": params})
    sorted(terms)  # ['correspondence', 'crop', 'rotation', 'rotation_accuracy']
    ```
    """

    def __init__(
        self,
        backbone: Backbone,
        num_local: int = 8,
        image_size: int = 224,
        local_size: int = 96,
        crop_weight: float = 1.0,
        correspondence_weight: float = 0.5,
        rotation_weight: float = 0.5,
        dino_weight: float = 0.0,
        correspondence_warmup_steps: int = 0,
        roi_sizes: Sequence[int] | None = None,
        sampling_ratio: int = -1,
        match_fraction: float = 0.5,
        projection_units: int | None = None,
        rotation_units: Sequence[int] | None = None,
        dino_units: int = 65536,
        dino_hidden_units: int = 2048,
        dino_bottleneck_units: int = 256,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        center_momentum: float = 0.9,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        total_steps: int | None = None,
        teacher_base_momentum: float = 0.996,
        **kwargs,
    ):
        if not isinstance(image_size, int):
            sizes = {int(s) for s in image_size}
            if len(sizes) != 1:
                raise ValueError(f"GTSAModel: global views are square; received image_size={image_size}")
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
        weights = dict(crop_weight=crop_weight, correspondence_weight=correspondence_weight,
                       rotation_weight=rotation_weight, dino_weight=dino_weight)  # fmt: skip
        bad = {k: w for k, w in weights.items() if not w >= 0}
        if bad or not any(weights.values()):
            raise ValueError(f"GTSAModel: loss weights must be >= 0 and one of them > 0; received {weights}")
        if int(num_local) < 0 or int(correspondence_warmup_steps) < 0:
            raise ValueError(
                f"GTSAModel: num_local and correspondence_warmup_steps must be >= 0; received {num_local}, "
                f"{correspondence_warmup_steps}"
            )
        if (
            isinstance(sampling_ratio, bool)
            or int(sampling_ratio) != sampling_ratio
            or not (int(sampling_ratio) >= 1 or int(sampling_ratio) == -1)
        ):
            raise ValueError(f"GTSAModel: sampling_ratio must be an int >= 1 or -1; received {sampling_ratio!r}")
        if not 0.0 < match_fraction <= 1.0:
            raise ValueError(f"GTSAModel: match_fraction must be in (0, 1]; received {match_fraction}")
        grids = (backbone.grid_size(image_size), backbone.grid_size(int(local_size)))
        used = slice(0, 2 if num_local else 1)
        stride = backbone.feature_stride or 1
        # A ResNet's map covers every pixel (its grid rounds up); a ViT's drops a side's last size % patch px.
        cut = any(g[0] * stride < s for g, s in zip(grids[used], (image_size, int(local_size))[used]))
        if min(min(g) for g in grids[used]) < 1 or cut or not backbone.has_spatial_map:
            raise ValueError(
                f"GTSAModel: {backbone.name} gives patch grids {grids[0]} (global, {image_size} px) and {grids[1]} "
                f"(local, {local_size} px) of {stride} px cells; GTSA needs a spatial map at both sizes that covers "
                "the whole view (a ViT: sizes that are multiples of its patch size)"
            )
        if roi_sizes is None:
            roi_sizes = tuple(max(1, round(g[0] * r)) for g, r in zip(grids, _ROI_PER_GRID))
        roi_sizes = tuple(int(r) for r in roi_sizes)
        if len(roi_sizes) != 2 or min(roi_sizes) < 1:
            raise ValueError(f"GTSAModel: roi_sizes must be two ints >= 1 (global, local); received {roi_sizes}")

        dim = backbone.feature_dim
        self.num_local = int(num_local)
        self.local_size = int(local_size)
        self.crop_weight = float(crop_weight)
        self.correspondence_weight = float(correspondence_weight)
        self.rotation_weight = float(rotation_weight)
        self.dino_weight = float(dino_weight)
        self.correspondence_warmup_steps = int(correspondence_warmup_steps)
        self.roi_sizes = roi_sizes
        self.sampling_ratio = int(sampling_ratio)
        self.match_fraction = float(match_fraction)
        self.projection_units = int(projection_units or 2 * dim)
        self.rotation_units = tuple(int(u) for u in (rotation_units or (2 * dim, 2 * dim, 128)))
        self.dino_units = int(dino_units)
        self.dino_hidden_units = int(dino_hidden_units)
        self.dino_bottleneck_units = int(dino_bottleneck_units)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.center_momentum = float(center_momentum)
        self._grids = grids
        policy = self.dtype_policy

        self.projector = self.predictor = self.teacher_projector = None
        if self.dense_losses:
            self.projector = ConvProjector(dim, self.projection_units, name="projector", dtype=policy)
            self.projector.build((None, None, None, dim))
            self.predictor = ConvPredictor(self.projection_units, name="predictor", dtype=policy)
            self.predictor.build((None, None, None, self.projection_units))
        self.rotation_head = None
        if self.rotation_weight:
            # GTSA's rot_predictor: [Linear-LN-GELU] x 2, Linear-LN (no GELU), Linear(4).
            self.rotation_head = keras.Sequential(
                [
                    MLP(
                        self.rotation_units,
                        norm="layer",
                        activation="gelu",
                        last_batch_norm=True,
                        name="rotation_mlp",
                        dtype=policy,
                    ),
                    keras.layers.Dense(4, name="rotation_logits", dtype=policy),
                ],
                name="rotation_head",
            )
            self.rotation_head.build((None, dim))
            _torch_linear_init(self.rotation_head)
        self.dino_head = self.teacher_dino_head = self.dino_center = None
        if self.dino_weight:
            self.dino_head = DINOHead(
                self.dino_units, self.dino_hidden_units, self.dino_bottleneck_units, name="dino_head", dtype=policy
            )
            self.dino_head.build((None, dim))
            self.dino_center = self.add_weight(
                shape=(self.dino_units,), initializer="zeros", trainable=False, name="dino_center", dtype="float32"
            )
        self.teacher_backbone = ema_copy(backbone, f"teacher_{backbone.name}")
        _without_drop_path(self.teacher_backbone)
        if self.projector is not None:
            self.teacher_projector = ema_copy(self.projector, "teacher_projector")
        if self.dino_head is not None:
            self.teacher_dino_head = ema_copy(self.dino_head, "teacher_dino_head")
        self.track_terms()

    # --- what is new about GTSA ------------------------------------------------------------

    @property
    def dense_losses(self) -> bool:
        """Whether the conv heads train (the crop or the correspondence loss is on)."""
        return bool(self.crop_weight or self.correspondence_weight)

    def view_names(self) -> list[str]:
        """`g1`, `g2`, `l1`..`lN`: the views of `MultiCropPolicy`, in its order."""
        return [*GLOBAL_VIEWS, *(f"l{i + 1}" for i in range(self.num_local))]

    def loss_weights(self) -> dict[str, float]:
        """Loss term -> its weight in the total (the correspondence weight before its warm-up gate)."""
        return {
            "crop": self.crop_weight,
            "correspondence": self.correspondence_weight,
            "rotation": self.rotation_weight,
            "dino": self.dino_weight,
        }

    def term_names(self) -> list[str]:
        names = []
        for name, weight in self.loss_weights().items():
            if weight:
                names += [name, "rotation_accuracy"] if name == "rotation" else [name]
        return names

    def representation(self, outputs: dict) -> dict:
        pooled = _mean_tokens(outputs)
        return {k: pooled for k in REPRESENTATION_KEYS}

    def ema_pairs(self) -> list[tuple]:
        pairs = [(self.teacher_backbone, self.backbone)]
        if self.teacher_projector is not None:
            pairs.append((self.teacher_projector, self.projector))
        if self.teacher_dino_head is not None:
            pairs.append((self.teacher_dino_head, self.dino_head))
        return pairs

    def teacher_momentum(self):
        """tau(k + 1) for the update that follows optimizer step k: GTSA's code moves the teacher at the
        start of step k + 1, with that step's momentum, towards the weights step k made; the teacher a
        step sees is the same here, updated right after the optimizer instead."""
        if self.total_steps is None:
            return super().teacher_momentum()
        return byol_momentum(self.optimizer.iterations + 1, self.total_steps, self.teacher_base_momentum)

    def _check_batch(self, batch) -> None:
        if not isinstance(batch, dict) or "views" not in batch:
            raise ValueError(
                f"GTSAModel trains on batches {{'views': {{'g1', 'g2', 'l1', ...}}, 'params'}}; {_POLICY_HINT}"
            )
        names = self.view_names()
        missing = [v for v in names if v not in batch["views"]]
        if missing:
            raise ValueError(
                f"GTSAModel: batch['views'] lacks {missing} (it has {sorted(batch['views'])}); {_POLICY_HINT}"
            )
        for v in names:
            side = self.image_size[0] if v in GLOBAL_VIEWS else self.local_size
            shape = tf.TensorShape(batch["views"][v].shape)
            if shape.rank != 4 or tuple(shape[1:3]) not in ((side, side), (None, None)):
                raise ValueError(f"GTSAModel: batch['views'][{v!r}] has shape {shape}; expected (B, {side}, {side}, 3)")
        keys = ["rot90"] if self.rotation_weight else []
        keys += ["overlap", "overlap_valid", "rot90"] if self.dense_losses else []
        params = batch.get("params") or {}
        lacking = sorted({f"params[{v!r}][{k!r}]" for v in names for k in keys if k not in params.get(v, {})})
        if lacking:
            raise ValueError(
                f"GTSAModel: the batch lacks {lacking[:4]}{' ...' if len(lacking) > 4 else ''}; {_POLICY_HINT}"
            )

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
        """Global view -> the teacher's (stop-gradient) outputs: `tokens`, and `projection` when dense losses run."""

        def teacher(images, training):
            parts = self.teacher_backbone(images, training=training)
            parts = {"tokens": parts["tokens"], "feature_map": parts["feature_map"]}
            if self.teacher_projector is not None:
                parts["projection"] = self.teacher_projector(parts["feature_map"], training=training)
            return {k: ops.stop_gradient(t) for k, t in parts.items()}

        return self.encode_together(teacher, views, list(GLOBAL_VIEWS), training)

    def _pair_losses(self, batch: dict, predictions: dict, teacher: dict) -> dict:
        """The crop and correspondence losses averaged over the (teacher global view, other view) pairs."""
        names = self.view_names()
        params = batch["params"]
        crop, corr, pairs = 0.0, 0.0, 0
        for q in GLOBAL_VIEWS:
            t_map = teacher[q]["projection"]
            t_tokens = ops.reshape(t_map, (ops.shape(t_map)[0], -1, self.projection_units))
            for v in names:
                if v == q:
                    continue
                is_global = v in GLOBAL_VIEWS
                pairs += 1
                s_map = predictions[v]
                if self.crop_weight:
                    turns = ops.cast(params[v]["rot90"], "int32") - ops.cast(params[q]["rot90"], "int32")
                    crop = crop + roi_cosine(
                        s_map,
                        t_map,
                        params[v]["overlap"][:, names.index(q)],
                        params[q]["overlap"][:, names.index(v)],
                        turns,
                        valid=params[v]["overlap_valid"][:, names.index(q)],
                        output_size=self.roi_sizes[0 if is_global else 1],
                        sampling_ratio=self.sampling_ratio,
                    )
                if self.correspondence_weight:
                    grid = self._grids[0 if is_global else 1]
                    s_tokens = ops.reshape(s_map, (ops.shape(s_map)[0], -1, self.projection_units))
                    k = max(1, int(grid[0] * grid[1] * self.match_fraction))
                    corr = corr + patch_correspondence(s_tokens, t_tokens, k)
        out = {}
        if self.crop_weight:
            out["crop"] = crop / pairs
        if self.correspondence_weight:
            out["correspondence"] = corr / pairs
        return out

    def _correspondence_scale(self):
        """1 once `correspondence_warmup_steps` optimizer steps are done, else 0 (GTSA's warm-up)."""
        if not self.correspondence_warmup_steps or getattr(self, "optimizer", None) is None:
            return 1.0
        return ops.cast(self.optimizer.iterations >= self.correspondence_warmup_steps, "float32")

    def compute_losses(self, batch: dict, training=False) -> tuple[tf.Tensor, dict]:
        self._check_batch(batch)
        names = self.view_names()
        views = {v: self.normalize(batch["views"][v]) for v in names}
        student = self._student(views, training)
        # the rotation head alone needs no teacher: skip its forward pass then
        teacher = self._teacher(views, training) if self.dense_losses or self.dino_weight else None
        terms = {}
        if self.dense_losses:
            terms.update(self._pair_losses(batch, self._dense_heads(student, training), teacher))
        if self.rotation_weight:
            pooled = ops.concatenate([_mean_tokens(student[v]) for v in names], axis=0)
            labels = ops.concatenate([ops.reshape(batch["params"][v]["rot90"], (-1, 1)) for v in names], axis=0)
            out = rotation_prediction(self.rotation_head(pooled, training=training), labels)
            terms["rotation"], terms["rotation_accuracy"] = out["total"], out["accuracy"]
        if self.dino_weight:
            student_logits = [self.dino_head(_mean_tokens(student[v]), training=training) for v in names]
            teacher_logits = [
                ops.stop_gradient(self.teacher_dino_head(_mean_tokens(teacher[v]), training=training))
                for v in GLOBAL_VIEWS
            ]
            terms["dino"] = dino_loss(
                student_logits,
                teacher_logits,
                self.dino_center,
                student_temperature=self.student_temperature,
                teacher_temperature=self.teacher_temperature,
            )
            if training:
                dino_center_update(self.dino_center, teacher_logits, self.center_momentum)
        total = 0.0
        for name, weight in self.loss_weights().items():
            if weight:
                if name == "correspondence":
                    weight = weight * self._correspondence_scale()
                total = total + weight * terms[name]
        return total, terms

    # --- serialisation ----------------------------------------------------------------------

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "image_size": self.image_size[0],
            "num_local": self.num_local,
            "local_size": self.local_size,
            "crop_weight": self.crop_weight,
            "correspondence_weight": self.correspondence_weight,
            "rotation_weight": self.rotation_weight,
            "dino_weight": self.dino_weight,
            "correspondence_warmup_steps": self.correspondence_warmup_steps,
            "roi_sizes": list(self.roi_sizes),
            "sampling_ratio": self.sampling_ratio,
            "match_fraction": self.match_fraction,
            "projection_units": self.projection_units,
            "rotation_units": list(self.rotation_units),
            "dino_units": self.dino_units,
            "dino_hidden_units": self.dino_hidden_units,
            "dino_bottleneck_units": self.dino_bottleneck_units,
            "student_temperature": self.student_temperature,
            "teacher_temperature": self.teacher_temperature,
            "center_momentum": self.center_momentum,
            "teacher_base_momentum": self.teacher_base_momentum,
        }
