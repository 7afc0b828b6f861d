"""MLP heads on frozen features, early-stopped on held-out groups (Keras `fit` + `EarlyStopping`).

`train_mlp(x, y, groups)` holds out a share of the **groups** (objects, photos) as a validation
set, standardises inputs (and regression targets) with the remaining rows' statistics, trains
`[Dense - BatchNorm - ReLU] * len(hidden_units) + Dense` with Adam, and stops when the validation
loss has not improved for `patience` epochs, restoring the best epoch's weights
(`keras.callbacks.EarlyStopping(restore_best_weights=True)`). A run is deterministic for a
`seed` (it calls `keras.utils.set_random_seed(seed)`).

The linear heads are closed-form (`keras_eqssl.probes.linear`).

Example:
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(512, 8)).astype("float32"); y = np.tanh(x[:, :2]) * 3.0
>>> head = train_mlp(x, y, np.arange(512) // 4, hidden_units=(64,), batch_size=32, learning_rate=3e-3)
>>> from keras_eqssl.probes.r2 import r2_mean
>>> r2_mean(y, head.predict(x)) > 0.9, head.stopped_epoch < 199
(True, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

TASKS = ("regression", "classification")


@dataclasses.dataclass
class TrainedHead:
    """A head trained by `train_mlp`; `predict` applies the same standardisation.

    Attributes:
        model: the Keras model (on standardised inputs).
        task: "regression" or "classification".
        x_mean, x_std: input standardisation.
        y_mean, y_std: target standardisation (regression; empty for classification).
        history: per-epoch "loss" and "val_loss".
        best_epoch: the epoch whose weights were kept (0-based).
        stopped_epoch: the last epoch run (0-based).
    """

    model: object
    task: str
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    history: dict
    best_epoch: int
    stopped_epoch: int

    def predict(self, x, batch_size: int = 4096) -> np.ndarray:
        """Regression: (N, D) predictions in target units. Classification: (N,) labels."""
        x = _check_x(x, "TrainedHead.predict")
        if x.shape[1] != self.x_mean.shape[0]:
            raise ValueError(f"TrainedHead.predict: expected {self.x_mean.shape[0]} features; received {x.shape[1]}.")
        z = (x - self.x_mean) / self.x_std
        out = np.concatenate(
            [np.asarray(self.model(z[i : i + batch_size], training=False)) for i in range(0, len(z), batch_size)]
        )
        if self.task == "regression":
            return out * self.y_std + self.y_mean
        return out.argmax(axis=1)


def _check_x(x, where) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{where}: features must be (N, C) with N >= 1; received shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: features contain NaN or Inf.")
    return x


def build_head(input_dim: int, output_dim: int, hidden_units: Sequence[int] = (), batch_norm: bool = True):
    """The Keras head: `(N, input_dim) -> (N, output_dim)`, `[Dense-BN-ReLU] * n + Dense`."""
    import keras

    inputs = keras.Input((int(input_dim),))
    x = inputs
    for units in hidden_units:
        x = keras.layers.Dense(int(units), use_bias=not batch_norm)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    outputs = keras.layers.Dense(int(output_dim), dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mlp_head" if hidden_units else "linear_head")


def validation_split(groups, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): about `fraction` of the groups, whole, held out."""
    groups = np.asarray(groups)
    unique = np.unique(groups)
    if len(unique) < 2:
        raise ValueError(f"train_mlp: early stopping needs at least 2 groups; received {len(unique)}.")
    rng = np.random.default_rng([seed, 0x5EED])
    n_val = min(len(unique) - 1, max(1, int(round(fraction * len(unique)))))
    held = rng.permutation(unique)[:n_val]
    is_val = np.isin(groups, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def train_mlp(
    x,
    y,
    groups,
    *,
    task: str = "regression",
    hidden_units: Sequence[int] = (1024, 1024),
    batch_norm: bool = True,
    num_classes: int | None = None,
    epochs: int = 200,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    val_fraction: float = 0.2,
    patience: int = 10,
    seed: int = 0,
    verbose: int = 0,
) -> TrainedHead:
    """Trains an MLP head, early-stopped on held-out groups with the best weights restored.

    Args:
        x: (N, C) features.
        y: regression: (N,) or (N, D) floats; classification: (N,) int labels in [0, K).
        groups: (N,) group ids; about `val_fraction` of the groups form the validation set.
        task: "regression" (MSE on standardised targets) or "classification" (cross-entropy).
        hidden_units: hidden widths (() is a linear head trained by SGD).
        batch_norm: BatchNorm after each hidden Dense.
        num_classes: K (classification; default max(y) + 1).
        epochs: the most epochs.
        batch_size: mini-batch size.
        learning_rate, weight_decay: AdamW's.
        val_fraction: share of groups held out for early stopping.
        patience: epochs without a better validation loss before stopping.
        seed: weights, validation groups and batch order.
        verbose: Keras `fit` verbosity.

    Returns:
        A `TrainedHead`.
    """
    import keras

    if task not in TASKS:
        raise ValueError(f"train_mlp: task must be one of {TASKS}; received {task!r}.")
    x = _check_x(x, "train_mlp")
    n = len(x)
    if task == "regression":
        y = np.asarray(y, dtype=np.float32)
        y = y[:, None] if y.ndim == 1 else y
        if y.ndim != 2 or len(y) != n or not np.all(np.isfinite(y)):
            raise ValueError(f"train_mlp: targets must be finite (N,) or (N, D) with N = {n}; received {y.shape}.")
    else:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"train_mlp: labels must be (N,) integers with N = {n}; received {y.dtype} {y.shape}.")
        num_classes = int(num_classes or y.max() + 1)
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise ValueError(f"train_mlp: epochs, batch_size and patience must be >= 1; received {epochs}, {batch_size}, {patience}.")  # fmt: skip
    train_idx, val_idx = validation_split(groups, val_fraction, seed)

    x_mean = x[train_idx].mean(axis=0)
    x_std = np.where((s := x[train_idx].std(axis=0)) > 1e-8, s, 1.0).astype(np.float32)
    z = ((x - x_mean) / x_std).astype(np.float32)
    if task == "regression":
        y_mean = y[train_idx].mean(axis=0)
        y_std = np.where((s := y[train_idx].std(axis=0)) > 1e-8, s, 1.0).astype(np.float32)
        t, out_dim = ((y - y_mean) / y_std).astype(np.float32), y.shape[1]
        loss = "mse"
    else:
        y_mean = y_std = np.zeros(0, np.float32)
        t, out_dim = y.astype(np.int32), num_classes
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    keras.utils.set_random_seed(seed)
    model = build_head(x.shape[1], out_dim, tuple(hidden_units), batch_norm=batch_norm)
    model.compile(keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay), loss=loss)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    fit = model.fit(
        z[train_idx],
        t[train_idx],
        validation_data=(z[val_idx], t[val_idx]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[stop],
        verbose=verbose,
    )
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    best = int(np.argmin(history["val_loss"]))
    return TrainedHead(model, task, x_mean, x_std, y_mean, y_std, history, best, len(history["val_loss"]) - 1)
