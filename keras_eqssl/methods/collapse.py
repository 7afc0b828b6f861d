"""Collapse monitors: the spread of a model's embedding during training, and a warning when it collapses.

A self-supervised model *collapses* when its encoder maps every image to (nearly) the same
vector, or to a few directions: the loss can still fall, but the features say little. Two numbers
on a fixed batch of `n` images with a `d`-dimensional embedding show it:

- `embedding_std`: the std over the batch of each dimension of the L2-normalised embedding, averaged
  over the dimensions (SimSiam, Chen & He 2021). Normalising makes it independent of the scale of
  the features: a healthy embedding spread over the unit sphere has about `1/sqrt(d)`; a collapsed
  one 0.
- `effective_rank`: `exp(entropy(s / sum(s)))` of the embedding matrix's singular values `s` (Roy &
  Vetterli 2007; RankMe, Garrido et al. 2023), between 1 (every row on one line) and `min(n, d)`
  (the variance spread evenly over as many directions as the batch can show).
"""

from __future__ import annotations

import math
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_eqssl.methods.callbacks import last_step_of_epoch

STD_KEY, RANK_KEY = "embedding_std", "effective_rank"
# The defaults flag a near-complete collapse only: at initialisation a ResNet's embedding of varied
# photos already has a std of about 0.1/sqrt(d) (its features share one large mean direction).
# Below RANK_FLOOR the batch lies (almost) on one line, whatever the batch size.
RANK_FLOOR = 1.5


def effective_rank(x) -> float:
    """Roy & Vetterli's effective rank of a matrix `(n, d)`: exp of the entropy of its normalised
    singular values; 0 for an all-zero matrix.

    >>> round(effective_rank(np.eye(8)), 6)
    8.0
    >>> round(effective_rank(np.outer(np.arange(1, 5), np.ones(3))), 6)
    1.0
    """
    s = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)
    total = s.sum()
    if not total > 0:
        return 0.0
    p = s[s > total * 1e-12] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def embedding_std(x) -> float:
    """Mean over dimensions of the batch std of the L2-normalised rows of `x` `(n, d)`
    (about `1/sqrt(d)` when spread over the sphere, 0 when collapsed).

    >>> round(embedding_std(np.ones((4, 3))), 6)
    0.0
    >>> round(embedding_std(np.array([[1.0, 0.0], [-1.0, 0.0]])), 6)
    0.5
    """
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    return float(x.std(axis=0).mean())


def collapse_stats(x) -> dict[str, float]:
    """`{"embedding_std", "effective_rank"}` of an embedding batch `(n, d)`."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return {STD_KEY: embedding_std(x), RANK_KEY: effective_rank(x)}


def collapse_signs(stats: dict, dim: int, batch: int, std_fraction: float, rank_fraction: float) -> list[str]:
    """What in `stats` says collapse: `embedding_std < std_fraction / sqrt(dim)`, or
    `effective_rank < max(rank_fraction * min(batch, dim), RANK_FLOOR)`; [] when neither."""
    signs = []
    std_floor = std_fraction / math.sqrt(dim)
    if stats[STD_KEY] < std_floor:
        signs.append(f"embedding std {stats[STD_KEY]:.3g} < {std_fraction:g}/sqrt({dim}) = {std_floor:.3g}")
    rank_floor = max(rank_fraction * min(batch, dim), RANK_FLOOR)
    if stats[RANK_KEY] < rank_floor:
        signs.append(
            f"effective rank {stats[RANK_KEY]:.3g} < {rank_floor:.3g} = max({rank_fraction:g} x min(batch {batch}, "
            f"dim {dim}), {RANK_FLOOR:g})"
        )
    return signs


class CollapseMonitor(keras.callbacks.Callback):
    """Logs the embedding's std and effective rank on a fixed batch, and warns when they fall toward collapse.

    Every `every` optimizer steps the model encodes `images` in inference mode (no weight, batch-norm
    statistic or random state changes: training is unchanged) and computes `collapse_stats` of its
    `part` output, `(n, d)`. The latest values are added to the step's logs as `embedding_std` and
    `effective_rank`, so the progress bar shows them and a `keras.callbacks.TensorBoard` placed after
    this callback writes them (`batch_embedding_std`, `batch_effective_rank`); they are left out of
    the last step of each epoch, so the epoch's logs and `fit`'s History stay the model's own metrics.

    A warning is printed when `collapse_signs` finds a sign, and again only when a number has fallen
    below half of what it was at the previous warning.

    Args:
        images: `(n, H, W, 3)` uint8 or [0, 1] float images (a few tens are enough; `n >= 2`).
        every: steps between two measurements.
        std_fraction: warn when the std < `std_fraction / sqrt(d)`.
        rank_fraction: warn when the effective rank < `rank_fraction * min(n, d)` (or < `RANK_FLOOR`, 1.5).
        part: the `encoder_outputs` key (an `SSLModel`); a model without `encoder_outputs` is called
            on the images and its output (or its `part` entry) used.
        stream: where warnings go (default: stdout).

    Example:
    >>> monitor = CollapseMonitor(np.zeros((16, 32, 32, 3), np.uint8), every=10)
    >>> model.fit(dataset, steps_per_epoch=100, callbacks=[monitor])  # doctest: +SKIP
    """

    def __init__(
        self,
        images,
        every: int = 10,
        std_fraction: float = 0.02,
        rank_fraction: float = 0.02,
        part: str = "embedding",
        stream=None,
    ):
        super().__init__()
        if len(images) < 2:
            raise ValueError(f"CollapseMonitor: needs a batch of at least 2 images; received {len(images)}.")
        self.images = tf.convert_to_tensor(images)
        self.every = int(every)
        self.std_fraction, self.rank_fraction = float(std_fraction), float(rank_fraction)
        self.part = part
        self.stream = stream
        self.latest: dict[str, float] = {}
        self.warned: dict[str, float] | None = None
        self.history: list[tuple[int, dict]] = []

    def embeddings(self) -> np.ndarray:
        """The model's `part` output on the images, `(n, d)`."""
        if hasattr(self.model, "encoder_outputs"):
            out = self.model.encoder_outputs(self.images, training=False)
        else:
            out = self.model(self.images, training=False)
        out = out[self.part] if isinstance(out, dict) else out
        return np.asarray(keras.ops.convert_to_numpy(out), np.float64).reshape(len(self.images), -1)

    def measure(self, step: int) -> dict[str, float]:
        """Computes, records and checks the numbers at `step`."""
        x = self.embeddings()
        self.latest = collapse_stats(x)
        self.history.append((step, dict(self.latest)))
        signs = collapse_signs(self.latest, x.shape[1], x.shape[0], self.std_fraction, self.rank_fraction)
        if signs and self._worse():
            self.warned = dict(self.latest)
            print(
                f"WARNING: step {step}: the embedding looks collapsed ({'; '.join(signs)}); see the collapse "
                "monitors in docs/guide/own_images.md",
                file=self.stream or sys.stdout,
                flush=True,
            )
        return self.latest

    def _worse(self) -> bool:
        if self.warned is None:
            return True
        return any(self.latest[k] < 0.5 * self.warned[k] for k in (STD_KEY, RANK_KEY))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.every and (step % self.every == 0 or not self.latest):
            self.measure(step)
        if logs is not None and not last_step_of_epoch(self.params, batch):
            logs.update(self.latest)  # the progress bar and TensorBoard read the step's logs
