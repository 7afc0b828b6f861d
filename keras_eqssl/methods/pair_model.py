"""PairModel: a backbone, one invariance loss and any equivariance objectives, trained on view pairs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.errors import ConfigError
from keras_eqssl.losses.ema import ema_copy
from keras_eqssl.methods.context import ModelContext
from keras_eqssl.methods.invariance.base import INVARIANCES, TOTAL, Invariance
from keras_eqssl.methods.objectives.base import OBJECTIVES, Objective, enabled_objectives, objective_problems
from keras_eqssl.methods.ssl_model import IMAGENET_MEAN, IMAGENET_STD, REPRESENTATION_KEYS, SSLModel
from keras_eqssl.nn.backbone import Backbone

VIEWS = ("v1", "v2")


def _specs_to_config(specs):
    if specs is None:
        return None
    return {view: [dataclasses.asdict(s) for s in view_specs] for view, view_specs in specs.items()}


def _specs_from_config(config):
    if config is None:
        return None
    out = {}
    for view, view_specs in config.items():
        out[view] = [
            s
            if isinstance(s, ParamSpec)
            else ParamSpec(**{**s, "shape": tuple(s["shape"]), "names": tuple(s["names"])})
            for s in view_specs
        ]
    return out


def _view_problems(config, views) -> list[str]:
    """A policy whose views lack 'v1' or 'v2' cannot train a pair model."""
    if set(VIEWS) <= set(views):
        return []
    return [
        f"config.augment.policy={config.augment.policy!r} makes views {list(views)}; pair methods "
        "(config.model.method='pair') train on 'v1' and 'v2' (policies simclr, byol, stl, essl)"
    ]


@keras.saving.register_keras_serializable(package="keras_eqssl")
class PairModel(SSLModel):
    """Self-supervised training on pairs of views: invariance loss + composable equivariance objectives.

    For a batch `{"views": {"v1": (B, H, W, 3), "v2": ...}, "params": ..., ...}` (uint8, or float
    in [0, 1]), each step normalises the views (`(x - mean) / std`), runs the backbone on both,
    and splits its channels SIE-style: the first `d_inv` are the invariant part, the next
    `d_equi` the equivariant part (no split: both are the whole representation). Then

        loss = invariance(pooled_inv(v1), pooled_inv(v2))["total"]
               + sum_k objective_k.weight * objective_k(pair)["total"]

    An objective whose `uses_invariant_projections` is True (SIE with `joint_regularization`) also
    gets `pair["invariant_projections"]`, `{"v1": (B, D_inv), "v2": ...}`: the invariance loss's
    projector outputs, computed once and handed to the invariance loss too (it must
    `shares_projections`, as VICReg does).

    Every term is a metric (`loss`, e.g. `vicreg`, `vicreg_variance`, `recon`, `params_v1_crop`)
    that `fit` shows and `TensorBoard` logs. Invariance losses with an EMA target network (BYOL)
    get a target copy of the backbone, moved after every optimizer step with the cosine momentum
    schedule over `total_steps`.

    Under `tf.distribute`, build and compile the model inside `strategy.scope()`; losses use the
    global batch and gradients equal single-device ones (`keras_eqssl.losses.distributed`). Use
    synchronised BatchNorm in the backbone and heads for exactly global-batch statistics.

    Calling the model on images `(N, H, W, 3)` returns the representation:
    `{"embedding": (N, C), "invariant": (N, d_inv), "equivariant": (N, d_equi)}`. The heads and
    the decoder take no part in it (`encoder_outputs`), which is what export saves.

    Args:
        backbone: a `keras_eqssl.nn.Backbone`.
        invariance: an `Invariance` loss layer (e.g. `VICReg()`, `SimCLR()`).
        objectives: list of `Objective` layers (e.g. `CrossAttentionReconstruction()`).
        split: `(d_inv, d_equi)` or None; `d_inv + d_equi <= backbone.feature_dim`.
        image_size: int or (H, W), the size of the views (sets the decoder's and heads' shapes).
        param_specs: view -> `ParamSpec`s the augmentation policy records (`policy.param_specs()`).
            Parameter-prediction targets that are augmentation parameters need them (kind and
            shape come from the spec) and are checked against them at construction; None when
            no policy runs (only 3DIEBench's `rel_rotation` / `rel_color` can be predicted then).
        mean, std: per-channel normalisation of [0, 1] images.
        total_steps: length of the run, for the EMA momentum schedule (None: constant momentum).

    Example:

    >>> import keras, numpy as np
    >>> from keras_eqssl.methods import PairModel, VICReg, CrossAttentionReconstruction
    >>> from keras_eqssl.nn import backbone_from_name
    >>> model = PairModel(
    ...     backbone_from_name("resnet18", stem="cifar", width=0.125),
    ...     invariance=VICReg(projector_units=[64, 64]),
    ...     objectives=[CrossAttentionReconstruction(target_size=16, decoder_dim=32)],
    ...     split=(32, 32),
    ...     image_size=16,
    ... )
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))  # then model.fit(batches), as SSLModel's example
    >>> views = np.random.default_rng(0).random((2, 8, 16, 16, 3)).astype("float32")
    >>> total, terms = model.compute_losses({"views": {"v1": views[0], "v2": views[1]}})
    >>> sorted(terms)  # the metrics fit shows, besides `loss` (the total)
    ['recon', 'vicreg', 'vicreg_covariance', 'vicreg_invariance', 'vicreg_variance']
    >>> {k: tuple(v.shape) for k, v in model(views[0]).items()}
    {'embedding': (8, 64), 'invariant': (8, 32), 'equivariant': (8, 32)}
    """

    # --- the kind: config.model.method="pair" (see SSLModel) ----------------------------------

    kind = "pair"

    @classmethod
    def config_problems(cls, config) -> list[str]:
        """The policy (when one runs) makes 'v1' and 'v2', and every enabled objective accepts the config."""
        problems = []
        data, augment = config.get("data"), config.get("augment")
        if data is not None and augment is not None and (data.source != "threedie" or data.threedie.augment_renders):
            from keras_eqssl.augment.policies import policy_from_config

            problems += _view_problems(config, policy_from_config(augment).view_names())
        return problems + objective_problems(config)

    @classmethod
    def batch_problems(cls, config, per_replica_batch: int) -> list[str]:
        """The invariance loss's needs of the global batch, and each enabled objective's of a replica's."""
        name = config.model.invariance.name
        problems = [
            f"config.model.invariance.name={name!r}: {problem}"
            for problem in INVARIANCES[name].batch_problems(config.data.batch_size)  # statistics over all replicas
        ]
        for objective in enabled_objectives(config):
            problems += [
                f"config.model.{objective}: {p}" for p in OBJECTIVES[objective].batch_problems(per_replica_batch)
            ]
        return problems

    @classmethod
    def resume_rules(cls) -> dict[str, str]:
        """Each invariance loss's and objective's `resume_apply` arguments apply on resume."""
        rules = {
            f"model.invariance.{name}.{key}": "apply" for name, loss in INVARIANCES.items() for key in loss.resume_apply
        }
        rules.update({f"model.{name}.{key}": "apply" for name, part in OBJECTIVES.items() for key in part.resume_apply})
        return rules

    @classmethod
    def run_name(cls, config) -> str:
        """The invariance loss and the enabled objectives, e.g. `vicreg_recon`, `simclr_stl`."""
        return "_".join([config.model.invariance.name, *enabled_objectives(config)])

    @classmethod
    def from_run_config(cls, config, backbone, *, mean, std, param_specs, synchronized: bool) -> PairModel:
        """`config.model.invariance`'s loss and the enabled objectives (`config.model.<short_name>`) on `backbone`."""
        problems = (_view_problems(config, list(param_specs)) if param_specs else []) + objective_problems(config)
        if problems:
            raise ConfigError("; ".join(problems))
        m = config.model
        objectives = [
            OBJECTIVES[name].from_config_section(m[name], config, synchronized=synchronized)
            for name in enabled_objectives(config)
        ]
        loss = INVARIANCES[m.invariance.name]
        invariance = loss.from_config_section(m.invariance[m.invariance.name], config, synchronized=synchronized)
        return cls(
            backbone,
            invariance=invariance,
            objectives=objectives,
            split=None if tuple(m.split) == (0, 0) else tuple(m.split),
            param_specs=None if param_specs is None else {v: s for v, s in param_specs.items() if v in VIEWS},
            **cls._run_config_kwargs(config, mean=mean, std=std),
        )

    def __init__(
        self,
        backbone: Backbone,
        invariance: Invariance,
        objectives: Sequence[Objective] = (),
        split: Sequence[int] | None = None,
        image_size: int | Sequence[int] = 64,
        param_specs: dict | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        total_steps: int | None = None,
        **kwargs,
    ):
        if not isinstance(invariance, Invariance):
            raise TypeError(
                f"PairModel: invariance must be an Invariance layer (SimCLR, VICReg, ...); received {type(invariance).__name__}"
            )
        super().__init__(
            backbone,
            image_size=image_size,
            mean=mean,
            std=std,
            total_steps=total_steps,
            teacher_base_momentum=getattr(invariance, "base_momentum", 0.996),
            **kwargs,
        )
        objectives = list(objectives)
        for obj in objectives:
            if not isinstance(obj, Objective):
                raise TypeError(f"PairModel: objectives must be Objective layers; received {type(obj).__name__}")
        dim = backbone.feature_dim
        if split is None:
            d_inv, d_equi = dim, dim
        else:
            d_inv, d_equi = (int(s) for s in split)
            if d_inv < 1 or d_equi < 1 or d_inv + d_equi > dim:
                raise ValueError(
                    f"PairModel: split=({d_inv}, {d_equi}) does not fit the backbone's {dim} channels "
                    f"({backbone.name}); need d_inv >= 1, d_equi >= 1 and d_inv + d_equi <= {dim}."
                )
        size = self.image_size

        self.invariance = invariance
        self.objectives = objectives
        self.split = None if split is None else (d_inv, d_equi)
        self.param_specs = _specs_from_config(param_specs)
        self._d_inv, self._d_equi = d_inv, d_equi
        self._equi_start = 0 if split is None else d_inv

        grid = backbone.grid_size(size)
        self.context = ModelContext(
            image_size=size,
            grid_size=grid,
            has_spatial_map=backbone.has_spatial_map and grid[0] * grid[1] > 1,
            feature_dim=dim,
            invariant_dim=d_inv,
            equivariant_dim=d_equi,
            param_specs=self.param_specs,
        )
        invariance.build((None, d_inv))
        for obj in objectives:
            obj.setup(self.context)
            obj.built = True
        users = [o.short_name for o in objectives if getattr(o, "uses_invariant_projections", False)]
        if users and not invariance.shares_projections:
            raise ValueError(
                f"PairModel: the objectives {users} use the invariance loss's projections (pair['invariant_projections'])"
                f", which {type(invariance).__name__} does not share; use VICReg."
            )
        self._shares_projections = bool(users)

        self.target_backbone = None
        if invariance.uses_target:
            # The target stays `trainable` so its BatchNorm uses batch statistics in training, as
            # BYOL's target does; it is left out of `online_variables`, so nothing optimizes it.
            self.target_backbone = ema_copy(backbone, f"target_{backbone.name}")
        self.track_terms()

    # --- names ------------------------------------------------------------------------------

    def _parts(self):
        """(prefix, layer, term names) for the invariance loss and each objective, prefixes unique."""
        parts, seen = [], set()
        for layer in [self.invariance, *self.objectives]:
            prefix = layer.short_name
            k = 2
            while prefix in seen:
                prefix, k = f"{layer.short_name}{k}", k + 1
            seen.add(prefix)
            names = layer.term_names if isinstance(layer, Invariance) else layer.term_names()
            parts.append((prefix, layer, list(names)))
        return parts

    def term_names(self) -> list[str]:
        return [prefix if term == TOTAL else f"{prefix}_{term}" for prefix, _, names in self._parts() for term in names]

    # --- the forward pass -------------------------------------------------------------------

    def _split(self, outputs) -> dict:
        lo, hi = self._equi_start, self._equi_start + self._d_equi
        return {
            "invariant": outputs["pooled"][..., : self._d_inv],
            "equivariant": outputs["pooled"][..., lo:hi],
            "tokens": outputs["tokens"][..., lo:hi],
            "embedding": outputs["pooled"],
        }

    def representation(self, outputs) -> dict:
        parts = self._split(outputs)
        return {k: parts[k] for k in REPRESENTATION_KEYS}

    def _check_batch(self, batch):
        if not isinstance(batch, dict) or "views" not in batch:
            raise ValueError(
                "PairModel trains on batches {'views': {'v1': (B,H,W,3), 'v2': ...}, 'params': ...}; "
                f"received {type(batch).__name__} with keys {sorted(batch) if isinstance(batch, dict) else '-'}"
            )
        missing = [v for v in VIEWS if v not in batch["views"]]
        if missing:
            raise ValueError(f"PairModel: batch['views'] lacks {missing}; it has {sorted(batch['views'])}")
        for v in VIEWS:
            shape = tf.TensorShape(batch["views"][v].shape)
            if shape.rank != 4 or tuple(shape[1:3]) not in (self.image_size, (None, None)):
                raise ValueError(
                    f"PairModel: batch['views'][{v!r}] has shape {shape}; the model was built for "
                    f"(B, {self.image_size[0]}, {self.image_size[1]}, 3) views (image_size)."
                )

    def pair_outputs(self, batch: dict, training=False) -> dict:
        """The pair dict objectives receive (see `Objective`)."""
        self._check_batch(batch)
        names = [*VIEWS, *self._extra_views()]
        missing = [v for v in names if v not in batch["views"]]
        if missing:
            raise ValueError(
                f"PairModel: the objectives {[o.short_name for o in self.objectives]} need views {missing}, which "
                f"the batch lacks (it has {sorted(batch['views'])}); make them with the matching augmentation policy."
            )
        views = {v: self.normalize(batch["views"][v]) for v in names}
        parts = {v: self._split(self.backbone(views[v], training=training)) for v in VIEWS}
        parts.update(self._encode_together([v for v in names if v not in VIEWS], views, training))
        return {
            "views": views,
            "tokens": {v: parts[v]["tokens"] for v in names},
            "equivariant": {v: parts[v]["equivariant"] for v in names},
            "features": {v: parts[v]["embedding"] for v in names},
            "invariant": {v: parts[v]["invariant"] for v in names},
            "batch": batch,
        }

    def _extra_views(self) -> list[str]:
        """Views beyond the pair that some objective needs (`Objective.extra_views`), in order."""
        return list(dict.fromkeys(v for obj in self.objectives for v in obj.extra_views()))

    def _encode_together(self, names, views, training) -> dict:
        """The backbone's split outputs for `views[name]`, one backbone call for all (same-size views)."""
        return {v: self._split(out) for v, out in self.encode_together(self.backbone, views, names, training).items()}

    def compute_losses(self, batch: dict, training=False) -> tuple[tf.Tensor, dict]:
        """`(total, terms)`: the loss to minimise and every named term (per-replica scale, see losses)."""
        pair = self.pair_outputs(batch, training=training)
        shared = {}
        if self._shares_projections:  # projected once, for the invariance loss and the objectives that use them
            projections = tuple(self.invariance.project(pair["invariant"][v], training=training) for v in VIEWS)
            pair["invariant_projections"] = dict(zip(VIEWS, projections))
            shared = {"projections": projections}
        target = None
        if self.target_backbone is not None:
            target = tuple(
                ops.stop_gradient(
                    self.target_backbone(pair["views"][v], training=training)["pooled"][..., : self._d_inv]
                )
                for v in VIEWS
            )
        terms, total = {}, None
        for prefix, layer, _ in self._parts():
            if isinstance(layer, Invariance):
                out = layer(pair["invariant"]["v1"], pair["invariant"]["v2"], target, training=training, **shared)
                weighted = out[TOTAL]
            else:
                out = layer(pair, training=training)
                weighted = layer.weight * out[TOTAL]
            total = weighted if total is None else total + weighted
            for term, value in out.items():
                terms[prefix if term == TOTAL else f"{prefix}_{term}"] = value
        return total, terms

    # --- training ---------------------------------------------------------------------------

    def ema_pairs(self) -> list[tuple]:
        """(target layer, online layer) pairs the EMA moves (empty without a target network)."""
        if self.target_backbone is None:
            return []
        return [(self.target_backbone, self.backbone), *self.invariance.target_layers()]

    def reconstructions(self, batch: dict) -> dict:
        """For each reconstruction objective and view: `(x_hat, target)` `(B, S, S, 3)`, normalised space."""
        pair = self.pair_outputs(batch, training=False)
        out = {}
        for prefix, layer, _ in self._parts():
            if hasattr(layer, "reconstruct_view"):
                for view in layer.views_to_reconstruct():
                    out[f"{prefix}_{view}"] = layer.reconstruct_view(pair, view, training=False)
        return out

    # --- serialisation ----------------------------------------------------------------------

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "invariance": keras.saving.serialize_keras_object(self.invariance),
            "objectives": [keras.saving.serialize_keras_object(o) for o in self.objectives],
            "split": None if self.split is None else list(self.split),
            "param_specs": _specs_to_config(self.param_specs),
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["invariance"] = keras.saving.deserialize_keras_object(config["invariance"])
        config["objectives"] = [keras.saving.deserialize_keras_object(o) for o in config["objectives"]]
        return super().from_config(config)
