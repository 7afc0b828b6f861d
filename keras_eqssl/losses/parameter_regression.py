"""Augmentation-parameter prediction loss of CIPER and AugSelf: one named loss per recorded parameter."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import as_float32

if TYPE_CHECKING:
    from keras_eqssl.augment.base import ParamSpec

TOTAL = "total"


def _spec_map(specs) -> dict:
    if isinstance(specs, Mapping):
        return dict(specs)
    return {s.key: s for s in specs}


def _flatten(x: tf.Tensor, batch, per_example: int, what: str, expected: str) -> tf.Tensor:
    known = x.shape[1:]
    if x.shape.rank is not None and known.is_fully_defined() and math.prod(known) != per_example:
        raise ValueError(f"parameter_regression: {what} must have shape {expected}; received shape {x.shape}.")
    return tf.reshape(x, [batch, per_example])


def _standardize(t: tf.Tensor, eps: float) -> tf.Tensor:
    """Per-component standardisation over the (global) batch, like BatchNorm1d(affine=False)."""
    count = distributed.all_sum(tf.cast(tf.shape(t)[0], tf.float32))
    mean = distributed.all_sum(ops.sum(t, axis=0)) / count
    var = distributed.all_sum(ops.sum(ops.square(t - mean), axis=0)) / count  # biased
    return (t - mean) / ops.sqrt(var + eps)


def parameter_regression(
    pred: Mapping[str, tf.Tensor],
    target: Mapping[str, tf.Tensor],
    specs: Sequence[ParamSpec] | Mapping[str, ParamSpec],
    *,
    weights: Mapping[str, float] | None = None,
    standardize: bool = True,
    eps: float = 1e-5,
) -> dict[str, tf.Tensor]:
    """Losses for predicting augmentation parameters, one per key, by the kind of its `ParamSpec`.

    CIPER (Xu & Triesch, arXiv 2302.02330; as in trieschlab/AASSL `modules/ciper.py`) regresses
    batch-standardised parameters with MSE; AugSelf (Lee et al., NeurIPS 2021, "Improving
    Transferability of Representations via Augmentation-Aware Self-Supervision", eq. 3) predicts
    the parameter difference w1 - w2 and uses cross-entropy for discrete ones. For each key k, with B examples
    and m = prod(spec.shape) components:

        continuous:   t = (w - mean_B(w)) / sqrt(var_B(w) + eps)       (per component; biased var)
                      L_k = 1 / (B m) * sum_{b,j} (yhat_{b,j} - t_{b,j})^2
        binary:       L_k = 1 / (B m) * sum_{b,j} BCE(sigmoid(yhat_{b,j}), w_{b,j})     (w in {0, 1})
        categorical:  L_k = 1 / (B m) * sum_{b,j} -log softmax(yhat_{b,j,:})[w_{b,j}]   (w in [0, C))
        total         = sum_k weight_k * L_k

    The targets `w` are whatever the method regresses (a view's parameters, or the difference of
    two views' parameters for AugSelf); they get no gradient. `standardize=False` regresses the raw
    continuous values (e.g. AugSelf's MSE on tanh outputs of already-normalised differences).

    Distributed (inside `strategy.run`): the standardisation statistics and every mean are over
    the **global** batch (sums are all-reduced), and every returned value is global_value / R
    (see `keras_eqssl.losses.distributed`).

    Args:
        pred: dict key -> head output. Continuous and binary: `(B, *shape)` or `(B, m)` (logits for
            binary). Categorical: logits `(B, *shape, C)` or `(B, m * C)`. Keys are the subset of
            parameters the head predicts; each needs a spec and a target.
        target: dict key -> recorded values `(B, *shape)`: float for continuous, 0/1 for binary,
            int class ids for categorical (as `keras_eqssl.augment` records them).
        specs: the `keras_eqssl.augment.base.ParamSpec`s (list, or dict by key), e.g.
            `op.param_specs()`; `kind`, `shape` and `num_classes` are read.
        weights: optional dict key -> weight in the total (default 1 for every key).
        standardize: batch-standardise continuous targets (CIPER, AugSelf-style MSE).
        eps: added to the batch variance of continuous targets (constant targets give t = 0).

    Returns:
        dict of float32 scalars: one per key of `pred`, and `"total"`.

    Example:
    >>> import numpy as np
    >>> from keras_eqssl.augment.base import ParamSpec
    >>> specs = [ParamSpec("flip", (1,), "binary", 0, 1), ParamSpec("rot", (), "categorical", 0, 3, "int32")]
    >>> pred = {"flip": np.zeros((2, 1), "float32"), "rot": np.zeros((2, 4), "float32")}
    >>> target = {"flip": np.array([[0.0], [1.0]], "float32"), "rot": np.array([1, 3], "int32")}
    >>> {k: round(float(v), 4) for k, v in parameter_regression(pred, target, specs).items()}
    {'flip': 0.6931, 'rot': 1.3863, 'total': 2.0794}
    """
    spec_by_key = _spec_map(specs)
    weights = dict(weights or {})
    if TOTAL in pred:
        raise ValueError(f"parameter_regression: {TOTAL!r} is reserved for the summed loss; rename that parameter.")
    missing = [k for k in pred if k not in spec_by_key or k not in target]
    if missing:
        raise ValueError(
            f"parameter_regression: no spec or no target for predicted keys {missing}; "
            f"spec keys {sorted(spec_by_key)}, target keys {sorted(target)}."
        )
    unknown = [k for k in weights if k not in pred]
    if unknown:
        raise ValueError(
            f"parameter_regression: weights for keys that are not predicted: {unknown}; pred keys {sorted(pred)}."
        )
    if not pred:
        raise ValueError("parameter_regression: `pred` is empty; predict at least one parameter.")

    losses = {}
    for key, y in pred.items():
        spec = spec_by_key[key]
        w = tf.convert_to_tensor(target[key])
        y = as_float32(y, f"pred[{key!r}]")
        batch = tf.shape(w)[0] if w.shape.rank else None
        if batch is None:
            raise ValueError(
                f"parameter_regression: target[{key!r}] needs a batch dimension; received shape {w.shape}."
            )
        if y.shape[0] is not None and w.shape[0] is not None and y.shape[0] != w.shape[0]:
            raise ValueError(
                f"parameter_regression: pred[{key!r}] and target[{key!r}] have different batch sizes; "
                f"received pred shape {y.shape} and target shape {w.shape}."
            )
        m = math.prod(spec.shape)
        w = _flatten(tf.stop_gradient(w), batch, m, f"target[{key!r}]", f"(B, {', '.join(map(str, spec.shape))})")
        if spec.kind == "categorical":
            c = spec.num_classes
            y = tf.reshape(
                _flatten(y, batch, m * c, f"pred[{key!r}]", f"(B, *{tuple(spec.shape)}, {c}) logits"), [batch, m, c]
            )
            per_item = keras.losses.sparse_categorical_crossentropy(tf.cast(w, tf.int32), y, from_logits=True)
        else:
            y = _flatten(y, batch, m, f"pred[{key!r}]", f"(B, {m})")
            w = tf.cast(w, tf.float32)
            if spec.kind == "binary":
                per_item = ops.binary_crossentropy(w, y, from_logits=True)
            else:
                per_item = ops.square(y - (_standardize(w, eps) if standardize else w))
        losses[key] = distributed.global_mean(ops.sum(per_item), batch * m)
    losses[TOTAL] = ops.sum(ops.stack([weights.get(k, 1.0) * v for k, v in losses.items()]))
    return losses
