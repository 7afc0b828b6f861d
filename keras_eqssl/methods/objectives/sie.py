"""SIE: a hypernetwork fed the known relative rotation maps one view's equivariant embedding to the other's."""

from __future__ import annotations

import keras
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses.vicreg import _variance_and_covariance, vicreg
from keras_eqssl.methods.objectives.base import TOTAL, Objective, check_non_negative, units_argument
from keras_eqssl.nn.attribute_config import AttributeConfig
from keras_eqssl.nn.hypernetwork import LinearHypernetwork
from keras_eqssl.nn.mlp import MLP

ACTION = "rel_rotation"
ACTION_DIM = 4  # quaternion (x, y, z, w) of R1^-1 R2
EPS = 1e-4  # added to the variances (SIE, VICReg)

_SOURCE_HINT = (
    "SIE needs the known relative rotation of each pair: batch['rel_rotation'] (B, 4), which 3DIEBench-format "
    "data carries (config.data.source='threedie')"
)


@keras.saving.register_keras_serializable(package="keras_eqssl")
class SIE(AttributeConfig, Objective):
    """SIE's equivariance objective (Garrido, Najman, LeCun, "Self-Supervised Learning of Split
    Invariant Equivariant Representations", ICML 2023).

    After the official code (`facebookresearch/SIE`, `src/models.py` class `SIE`,
    `src/hypernetwork.py`, README's 3DIEBench command). With h1, h2 `(B, d_equi)` the equivariant
    parts of the split (`pair["equivariant"]`) and q `(B, 4)` the quaternion of R1^-1 R2, the rotation
    from view 1 to view 2 (`batch["rel_rotation"]`):

        z1 = g(h1), z2 = g(h2)                  g: the equivariant projector (BN MLP, last Dense no bias)
        z2_hat = W(q) z1                        W(q) = reshape(A q, (D, D)): a linear hypernetwork, no bias
        mse      = 1 / (B D) * sum |z2_hat - z2|^2          (no stop-gradient: both sides learn)
        std      = [v(z1) + v(z2)] / 2          v(Z) = 1/D sum_j max(0, 1 - sqrt(Var(z^j) + 1e-4))
        cov      = c(z1) + c(z2)                c(Z) = 1/D sum_{i != j} Cov(Z)_ij^2
                   (joint_regularization: v and c of [z_inv,k, z_k], width D_inv + D; see below)
        pred_std = v(z2_hat) / 2                SIE's std penalty on the predictor output
        total = equi_factor * sim_weight * mse + std_weight * std + pred_std_weight * pred_std
                + cov_weight * cov              (times `weight` in `PairModel`)

    v and c are VICReg's variance and covariance terms, unbiased statistics over the global batch
    (`keras_eqssl.losses.vicreg` for z1, z2; its helper `_variance_and_covariance` for z2_hat). SIE's 3DIEBench run: sim 10, std 10, cov 1, equi-factor
    0.45, so the MSE carries 4.5.

    The invariant side is `PairModel`'s invariance loss: VICReg with sim 10, std 10, cov 1 on the
    invariant part (configs/sie.py), i.e. SIE's `sim_coeff * mse(z1_inv, z2_inv)` plus std/cov
    on the invariant embeddings. By default (`joint_regularization=False`) std and cov are
    applied per block: no inv-equi cross-covariance, and each block is normalised by its own
    width (with equal widths, each block's std and cov weigh twice SIE's share of them).

    `joint_regularization=True` is SIE's code (`src/models.py`): std and cov of the
    concatenations [z_inv,1, z1] and [z_inv,2, z2] (width D_inv + D), which also penalise the
    covariance between invariant and equivariant dimensions. z_inv are the invariance loss's
    projections, which `PairModel` hands over (`pair["invariant_projections"]`; the loss must be
    VICReg), and that loss's own std and cov weights must be 0 (SIE's std/cov weights are
    `std_weight` and `cov_weight` here): the invariance loss then carries only
    `sim_weight * mse(z_inv,1, z_inv,2)`, and the total is SIE's.

    Args:
        weight: the weight `PairModel` gives the total (1: SIE's coefficients are inside).
        equi_factor: SIE's `--equi-factor`, scaling the MSE on top of `sim_weight` (0.45).
        sim_weight: SIE's `--sim-coeff` (10).
        std_weight: SIE's `--std-coeff` on the equivariant embeddings (10).
        cov_weight: SIE's `--cov-coeff` on the equivariant embeddings (1).
        pred_std_weight: the weight of the predictor-output std penalty (SIE: its `--std-coeff`, 10).
        projector_units: g's units (SIE: `--mlp 2048-2048-2048` scaled by d_equi / C, i.e.
            1024-1024-1024 for ResNet-18's 256 + 256 split). The default mirrors the library's
            512-512-512 invariant projector.
        joint_regularization: std and cov of [z_inv, z_equi] together, as SIE's code (see above).
        synchronized: synchronised BatchNorm in the projector under `tf.distribute`.

    Returns (call): `{"total", "mse", "std", "cov", "pred_std"}` (terms unweighted), float32.

    Example (a tiny model on a split; 3DIEBench pairs carry `rel_rotation`):
    >>> import numpy as np
    >>> from keras_eqssl.methods import SIE, PairModel, VICReg
    >>> from keras_eqssl.nn import backbone_from_name
    >>> model = PairModel(
    ...     backbone_from_name("resnet18", stem="cifar", width=0.0625),
    ...     VICReg(projector_units=[16, 16], sim_weight=10.0, std_weight=10.0),
    ...     objectives=[SIE(projector_units=[16, 8])],
    ...     split=(16, 16),
    ...     image_size=16,
    ... )
    >>> rng = np.random.default_rng(0)
    >>> views = rng.random((2, 4, 16, 16, 3)).astype("float32")
    >>> q = rng.normal(size=(4, 4)).astype("float32")
    >>> batch = {"views": {"v1": views[0], "v2": views[1]}, "rel_rotation": q / np.linalg.norm(q, axis=1, keepdims=True)}
    >>> _, terms = model.compute_losses(batch)
    >>> sorted(t for t in terms if t.startswith("sie"))
    ['sie', 'sie_cov', 'sie_mse', 'sie_pred_std', 'sie_std']
    """

    config_attributes = (
        "equi_factor",
        "sim_weight",
        "std_weight",
        "cov_weight",
        "pred_std_weight",
        "projector_units",
        "joint_regularization",
        "synchronized",
    )
    config_as_lists = ("projector_units",)

    short_name = "sie"
    resume_apply = (
        "weight", "equi_factor", "sim_weight", "std_weight", "cov_weight", "pred_std_weight", "joint_regularization",
    )  # fmt: skip

    def __init__(
        self,
        weight: float = 1.0,
        equi_factor: float = 0.45,
        sim_weight: float = 10.0,
        std_weight: float = 10.0,
        cov_weight: float = 1.0,
        pred_std_weight: float = 10.0,
        projector_units=(512, 512, 512),
        joint_regularization: bool = False,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(weight=weight, **kwargs)
        check_non_negative(
            "SIE",
            equi_factor=equi_factor,
            sim_weight=sim_weight,
            std_weight=std_weight,
            cov_weight=cov_weight,
            pred_std_weight=pred_std_weight,
        )
        self.equi_factor = float(equi_factor)
        self.sim_weight = float(sim_weight)
        self.std_weight = float(std_weight)
        self.cov_weight = float(cov_weight)
        self.pred_std_weight = float(pred_std_weight)
        self.projector_units = units_argument("SIE", "projector_units", projector_units)
        self.joint_regularization = bool(joint_regularization)
        self.synchronized = bool(synchronized)
        self.projector = self.hypernetwork = None

    @property
    def uses_invariant_projections(self) -> bool:
        """Whether `PairModel` must hand over the invariance loss's projections (joint regularisation)."""
        return self.joint_regularization

    @classmethod
    def config_problems(cls, config) -> list[str]:
        problems = []
        if config.data.source != "threedie":
            problems.append(f"{_SOURCE_HINT}; received config.data.source={config.data.source!r}.")
        threedie = config.data.get("threedie")
        if threedie is not None and threedie.get("rotation", 0) > 0:
            problems.append(
                "the in-plane rotation added to each render is not part of rel_rotation, so the hypernetwork would get "
                "the wrong action: set config.data.threedie.rotation=0 (SIE trains on the plain renders); received "
                f"config.data.threedie.rotation={threedie.rotation!r}."
            )
        if threedie is not None and threedie.get("augment_renders", False):
            problems.append(
                "augmenting the renders changes the views beyond rel_rotation: set "
                "config.data.threedie.augment_renders=False (SIE trains on the plain renders)."
            )
        split = config.model.get("split")
        if not split or tuple(split) == (0, 0):
            problems.append(
                "SIE predicts the equivariant part of a split representation: set config.model.split=(d_inv, d_equi); "
                f"received config.model.split={split!r} (no split)."
            )
        section = config.model.get("sie")
        if section is not None and section.get("joint_regularization", False):
            invariance = config.model.invariance
            vicreg = invariance.get("vicreg")
            if invariance.name != "vicreg":
                problems.append(
                    "joint_regularization takes std and cov of [z_inv, z_equi] with the invariance loss's projections, "
                    f"which only VICReg shares: set config.model.invariance.name='vicreg'; received {invariance.name!r}."
                )
            elif vicreg is not None and (vicreg.std_weight != 0 or vicreg.cov_weight != 0):
                problems.append(
                    "with joint_regularization the SIE objective applies std and cov to [z_inv, z_equi] "
                    "(config.model.sie.std_weight / cov_weight), so VICReg's own would count twice: set "
                    "config.model.invariance.vicreg.std_weight=0 and config.model.invariance.vicreg.cov_weight=0; "
                    f"received {vicreg.std_weight!r} and {vicreg.cov_weight!r}."
                )
        return problems

    def setup(self, context) -> None:
        super().setup(context)
        d = self.projector_units[-1]
        self.projector = MLP(
            self.projector_units,
            use_last_bias=False,
            synchronized=self.synchronized,
            name="projector",
            dtype=self.dtype_policy,
        )
        self.hypernetwork = LinearHypernetwork(d, name="hypernetwork", dtype=self.dtype_policy)
        self.projector.build((None, context.equivariant_dim))
        self.hypernetwork.build((None, d), (None, ACTION_DIM))

    def term_names(self) -> list[str]:
        return [TOTAL, "mse", "std", "cov", "pred_std"]

    def embeddings(self, pair: dict, training=None):
        """`(z1, z2, z2_hat)`, `(B, D)` float32: both views' projections and the prediction of z2."""
        action = pair["batch"].get(ACTION)
        if action is None:
            raise ValueError(f"SIE: the batch has no {ACTION!r}. {_SOURCE_HINT}.")
        dtype = self.projector.compute_dtype
        z1 = self.projector(ops.cast(pair["equivariant"]["v1"], dtype), training=training)
        z2 = self.projector(ops.cast(pair["equivariant"]["v2"], dtype), training=training)
        z2_hat = self.hypernetwork(z1, ops.cast(action, dtype))
        return ops.cast(z1, "float32"), ops.cast(z2, "float32"), ops.cast(z2_hat, "float32")

    def call(self, pair: dict, training=None) -> dict:
        z1, z2, z2_hat = self.embeddings(pair, training)
        error = ops.square(z2_hat - z2)
        mse = distributed.global_mean(ops.sum(error), ops.size(error))
        if self.joint_regularization:  # SIE's code: the regularisers see [z_inv, z_equi] of each view
            shared = pair.get("invariant_projections")
            if shared is None:
                raise ValueError(
                    "SIE(joint_regularization=True) needs pair['invariant_projections'], the invariance loss's "
                    "projections, which PairModel hands over (with a VICReg invariance loss)."
                )
            z1 = ops.concatenate([ops.cast(shared["v1"], "float32"), z1], axis=-1)  # after the MSE: (B, D_inv + D)
            z2 = ops.concatenate([ops.cast(shared["v2"], "float32"), z2], axis=-1)
        regular = vicreg(z1, z2, eps=EPS)  # variance = [v(z1) + v(z2)] / 2, covariance = c(z1) + c(z2)
        std, cov = regular["variance"], regular["covariance"]
        pred_std = distributed.scale(_variance_and_covariance(distributed.all_gather(z2_hat), EPS)[0] / 2.0)
        total = (
            self.equi_factor * self.sim_weight * mse
            + self.std_weight * std
            + self.pred_std_weight * pred_std
            + self.cov_weight * cov
        )
        return {TOTAL: total, "mse": mse, "std": std, "cov": cov, "pred_std": pred_std}
