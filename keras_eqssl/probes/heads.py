"""Small Keras heads trained on frozen features: linear or MLP, regression or classification.

`train_head(x, y, ...)` standardises the inputs (train mean / std), trains a head with Adam on
mini-batches, and stops early on a held-out part of the training set (restoring the best
weights), or runs a fixed number of epochs. Runs are deterministic for a given `seed`: the
initial weights, the validation split and the batch order all come from it, without touching
the global random state. A few thousand samples train in seconds on a CPU.

Heads:
- linear: one `Dense`;
- MLP: `[Dense - BatchNorm - ReLU] * len(hidden_units)`, then `Dense` (SIE's "deep end" is
  1024-1024 without BN: `hidden_units=(1024, 1024), batch_norm=False`).

`HEADS` names the two heads the probes train by default; `resolve_heads` turns a probe's
`heads=` argument into `{name: train_head kwargs}`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

TASKS = ("regression", "classification")
HEADS = {"linear": {"hidden_units": ()}, "mlp": {"hidden_units": (1024, 1024)}}


def resolve_heads(heads, head_options: Mapping | None = None) -> dict[str, dict]:
    """A probe's `heads=` as `{name: train_head kwargs}`.

    Args:
        heads: names from `HEADS` ("linear", "mlp"), or a dict `{name: kwargs}` (a name from `HEADS`
            starts from its defaults; another name needs `hidden_units`).
        head_options: kwargs for every head (e.g. `epochs`, `batch_size`, `learning_rate`);
            per-head kwargs override them.

    Example:
    >>> resolve_heads(["linear", "mlp"], {"epochs": 5})["mlp"]["hidden_units"]
    (1024, 1024)
    """
    options = dict(head_options or {})
    if isinstance(heads, str):
        heads = [heads]
    if isinstance(heads, Mapping):
        items = list(heads.items())
    else:
        items = [(h, {}) for h in heads]
    if not items:
        raise ValueError(f"Give at least one head; known: {sorted(HEADS)}.")
    out = {}
    for name, kwargs in items:
        if name not in HEADS and "hidden_units" not in (kwargs or {}):
            raise ValueError(
                f"Unknown head {name!r}; known: {sorted(HEADS)} (or give {{name: {{'hidden_units': ...}}}})."
            )
        out[str(name)] = {**HEADS.get(name, {}), **options, **(kwargs or {})}
    return out


@dataclasses.dataclass
class TrainedHead:
    """A head trained by `train_head`; `predict` applies the same input standardisation.

    Attributes:
        model: the Keras model (on standardised inputs).
        task: "regression" or "classification".
        x_mean, x_std: input standardisation.
        y_mean, y_std: target standardisation (regression; zeros / ones when off).
        history: per-epoch "loss" and, with early stopping, "val_loss".
        best_epoch: the epoch whose weights were kept (0-based).
    """

    model: object
    task: str
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    history: dict
    best_epoch: int

    def predict(self, x, batch_size: int = 4096) -> np.ndarray:
        """Regression: (N, D) predictions in target units. Classification: (N, K) logits."""
        x = _check_x(x, "TrainedHead.predict")
        if x.shape[1] != self.x_mean.shape[0]:
            raise ValueError(f"TrainedHead.predict: expected {self.x_mean.shape[0]} features; received {x.shape[1]}.")
        z = (x - self.x_mean) / self.x_std
        out = np.concatenate(
            [np.asarray(self.model(z[i : i + batch_size], training=False)) for i in range(0, len(z), batch_size)]
        )
        if self.task == "regression":
            out = out * self.y_std + self.y_mean
        return out


def _check_x(x, where) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{where}: features must be (N, C) with N >= 1; received shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: features contain NaN or Inf.")
    return x


def build_head(
    input_dim: int, output_dim: int, hidden_units: Sequence[int] = (), batch_norm: bool = True, seed: int = 0
):
    """The Keras head: `Dense` (linear) or `[Dense-BN-ReLU] * n + Dense` (MLP), seeded initialisers."""
    import keras

    inputs = keras.Input((int(input_dim),))
    x = inputs
    for i, units in enumerate(hidden_units):
        init = keras.initializers.GlorotUniform(seed=seed * 1000 + i)
        x = keras.layers.Dense(int(units), use_bias=not batch_norm, kernel_initializer=init)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    init = keras.initializers.GlorotUniform(seed=seed * 1000 + len(hidden_units))
    outputs = keras.layers.Dense(int(output_dim), kernel_initializer=init, dtype="float32")(x)
    name = "linear_head" if not hidden_units else "mlp_head"
    return keras.Model(inputs, outputs, name=name)


def train_head(
    x,
    y,
    *,
    task: str = "regression",
    hidden_units: Sequence[int] = (),
    batch_norm: bool = True,
    num_classes: int | None = None,
    epochs: int = 100,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    weight_decay: float = 0.0,
    validation_split: float = 0.1,
    patience: int | None = 10,
    standardize_targets: bool = True,
    seed: int = 0,
) -> TrainedHead:
    """Trains a linear or MLP head on frozen features.

    Args:
        x: (N, C) features.
        y: regression: (N,) or (N, D) float targets; classification: (N,) int labels in [0, K).
        task: "regression" (MSE) or "classification" (softmax cross-entropy).
        hidden_units: () for a linear head, e.g. (1024, 1024) for an MLP.
        batch_norm: BN after each hidden Dense (MLP only).
        num_classes: K (classification; default max(y) + 1).
        epochs: the most epochs to run.
        batch_size: mini-batch size; None: `min(256, max(16, N // 16))`, so that small sets still
            take about 16 steps per epoch.
        learning_rate: Adam's peak learning rate, cosine-decayed to 0 over `epochs`; None: 1e-2 for
            a linear head, 1e-3 for an MLP.
        weight_decay: Adam's decoupled weight decay (when > 0).
        validation_split: the fraction of (x, y) held out for early stopping (>= 1 sample).
        patience: stop after this many epochs without a better validation loss and keep the best
            weights; None (or validation_split=0) trains on all of (x, y) for `epochs`.
        standardize_targets: regression targets are standardised per dimension for training
            (each dimension weighs the same in the loss); predictions are in target units.
        seed: initial weights, split and batch order.

    Returns:
        A `TrainedHead`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(512, 8)).astype("float32"); y = x[:, :2] * 3.0
    >>> head = train_head(x, y, epochs=200)
    >>> float(np.abs(head.predict(x) - y).max()) < 0.1
    True
    """
    import keras
    import tensorflow as tf

    if task not in TASKS:
        raise ValueError(f"train_head: task must be one of {TASKS}; received {task!r}.")
    x = _check_x(x, "train_head")
    n = len(x)
    if task == "regression":
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or len(y) != n:
            raise ValueError(f"train_head: targets must be (N,) or (N, D) with N = {n}; received shape {y.shape}.")
        if not np.all(np.isfinite(y)):
            raise ValueError("train_head: targets contain NaN or Inf.")
    else:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"train_head: labels must be (N,) integers with N = {n}; received {y.dtype} {y.shape}.")
        num_classes = int(num_classes or y.max() + 1)
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"train_head: labels must lie in [0, {num_classes}); received [{y.min()}, {y.max()}].")
        y = y.astype(np.int32)
    if batch_size is None:
        batch_size = min(256, max(16, n // 16))
    if learning_rate is None:
        learning_rate = 1e-3 if hidden_units else 1e-2
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"train_head: epochs and batch_size must be >= 1; received {epochs}, {batch_size}.")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"train_head: validation_split must be in [0, 1); received {validation_split}.")

    rng = np.random.default_rng(seed)
    early = patience is not None and validation_split > 0 and n >= 2
    order = rng.permutation(n)
    n_val = max(1, int(round(validation_split * n))) if early else 0
    val_idx, train_idx = order[:n_val], order[n_val:]

    x_mean = x[train_idx].mean(axis=0)
    x_std = x[train_idx].std(axis=0)
    x_std = np.where(x_std > 1e-8, x_std, 1.0).astype(np.float32)
    z = ((x - x_mean) / x_std).astype(np.float32)
    if task == "regression":
        out_dim = y.shape[1]
        if standardize_targets:
            y_mean = y[train_idx].mean(axis=0)
            y_std = y[train_idx].std(axis=0)
            y_std = np.where(y_std > 1e-8, y_std, 1.0).astype(np.float32)
        else:
            y_mean, y_std = np.zeros(out_dim, np.float32), np.ones(out_dim, np.float32)
        t = ((y - y_mean) / y_std).astype(np.float32)
    else:
        out_dim = num_classes
        y_mean, y_std = np.zeros(0, np.float32), np.ones(0, np.float32)
        t = y

    model = build_head(x.shape[1], out_dim, tuple(hidden_units), batch_norm=batch_norm, seed=seed)
    kwargs = {"weight_decay": weight_decay} if weight_decay else {}
    n_train = len(train_idx)
    # Drop a last batch of one sample (BatchNorm cannot train on it); otherwise keep every sample.
    steps = max(1, n_train // batch_size + (1 if n_train % batch_size > 1 else 0))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
    optimizer = keras.optimizers.Adam(schedule, **kwargs)
    optimizer.build(model.trainable_variables)
    if task == "regression":

        def loss_fn(target, pred):
            return tf.reduce_mean(tf.square(pred - target))
    else:

        def loss_fn(target, pred):
            return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(target, pred, from_logits=True))

    z_train, t_train = tf.constant(z[train_idx]), tf.constant(t[train_idx])

    @tf.function
    def train_epoch(perm):
        total = tf.constant(0.0)
        for i in tf.range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            xb, yb = tf.gather(z_train, idx), tf.gather(t_train, idx)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            total += loss
        return total / tf.cast(steps, tf.float32)

    @tf.function
    def evaluate(xv, tv):
        return loss_fn(tv, model(xv, training=False))

    history = {"loss": []}
    best, best_epoch, best_weights, wait = np.inf, epochs - 1, None, 0
    if early:
        history["val_loss"] = []
        z_val, t_val = tf.constant(z[val_idx]), tf.constant(t[val_idx])
    for epoch in range(epochs):
        perm = tf.constant(rng.permutation(n_train), tf.int32)
        history["loss"].append(float(train_epoch(perm)))
        if not early:
            continue
        val = float(evaluate(z_val, t_val))
        history["val_loss"].append(val)
        if val < best - 1e-7:
            best, best_epoch, wait = val, epoch, 0
            best_weights = copy.deepcopy(model.get_weights())
        else:
            wait += 1
            if wait >= patience:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    return TrainedHead(model, task, x_mean, x_std, y_mean, y_std, history, best_epoch)
