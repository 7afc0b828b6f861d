"""Keras callbacks for pretraining: stop on a non-finite loss term, atomic checkpoints, reconstruction images,
throughput."""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from keras_eqssl.checkpoints import (
    CHECKPOINT_INDEX,
    delete_checkpoint,
    latest_checkpoint,
    save_atomically,
    write_config,
    write_text_atomically,
)
from keras_eqssl.errors import InputError


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf; the message names the term and the step."""


class CheckpointWriteError(InputError, OSError):
    """A checkpoint could not be written (disk full, permissions); the message names the file."""


class ModelWriteError(InputError, OSError):
    """The trained model (`model.keras`) could not be written (disk full, permissions); the message names the file."""


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after a checkpoint of the current step was
    written; `signum`, `step` and `checkpoint` (the file, or None when none could be written) say where."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        where = f"wrote checkpoint {checkpoint}" if checkpoint else "no checkpoint written"
        super().__init__(f"{name} at step {step}: {where}; rerun the same command to resume from it")

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class StopOnSignal(keras.callbacks.Callback):
    """Turns SIGINT (Ctrl-C) and SIGTERM during `fit` into a clean stop: the step running ends, the
    epoch ends there (so a `Checkpointer` after it in the list writes a checkpoint of that step), and
    `fit` returns; `interrupted` then holds the signal's number (None when none came).

    A second signal stops at once (Python's default behaviour), without the checkpoint. The handlers
    are installed in `on_train_begin` and the previous ones put back in `on_train_end`; they can be
    installed only from the main thread, so in another thread this callback does nothing.

    Training made of several `fit` calls wraps them in `with stopper.held():`, which keeps the
    handlers from its start to its end: a signal between two calls is then recorded too (check
    `interrupted` before the next call) instead of raising `KeyboardInterrupt` there.

    Example:

    ```python
    stopper = StopOnSignal()
    model.fit(dataset, epochs=10, steps_per_epoch=100, callbacks=[stopper, Checkpointer("ckpt")])
    if stopper.interrupted:
        ...  # the newest checkpoint is at the step the signal came in
    ```
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.interrupted: int | None = None
        self._previous: dict = {}
        self._held = False

    @contextlib.contextmanager
    def held(self):
        """Keeps the handlers installed for the whole `with` block (several `fit` calls)."""
        self.interrupted = None
        self._install()
        self._held = True
        try:
            yield self
        finally:
            self._held = False
            self._restore()

    def _install(self) -> None:
        if threading.current_thread() is threading.main_thread() and not self._previous:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def on_train_begin(self, logs=None):
        if self._held:
            if self.interrupted is not None:  # came between two fits: stop after this call's first step
                self.model.stop_training = True
            return
        self.interrupted = None
        self._install()

    def _handle(self, signum, frame):
        self.interrupted = signum
        if self.model is not None:
            self.model.stop_training = True
        self._restore()  # the next signal acts at once
        os.write(
            2,
            f"\n{signal.Signals(signum).name}: stopping after this step and writing a checkpoint of it "
            "(send it again to stop at once, without the checkpoint)\n".encode(),
        )

    def on_train_end(self, logs=None):
        if not self._held:
            self._restore()


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` naming the first loss term that is NaN/Inf and the step.

    Put it before any checkpoint callback in the list: it runs first at the end of each batch,
    so a checkpoint is never written after a non-finite step and the last good one stays as it
    was. (Keras' `TerminateOnNaN` only looks at `loss` and stops quietly.)

    The step is the optimizer's iteration count after the bad update (1-based), so step k is the
    k-th batch of the run, counting across resumes.
    """

    def __init__(self, checkpoint_dir: str | None = None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = {}
        for name, value in (logs or {}).items():
            value = float(np.asarray(value))
            if not math.isfinite(value):
                bad[name] = value
        if not bad:
            return
        terms = [n for n in bad if n != "loss"] or ["loss"]  # name the culprit terms, not just the sum
        step = int(self.model.optimizer.iterations.numpy())
        where = _last_good(self.checkpoint_dir)
        raise NonFiniteLossError(
            f"loss term {', '.join(repr(t) for t in terms)} became {', '.join(str(bad[t]) for t in terms)} "
            f"at step {step}; training stopped{where}. Lower the learning rate, check the data, or use float32."
        )


def _last_good(directory) -> str:
    """The error messages' "; the last good checkpoint is ..." clause ("" when there is none)."""
    kept = latest_checkpoint(directory) if directory else None
    return f"; the last good checkpoint is {kept['path']} (step {kept['step']})" if kept else ""


def non_finite_weights(model) -> list[str]:
    """The paths of `model`'s floating-point weights that hold a NaN or an Inf."""
    bad = []
    for w in model.weights:
        value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad.append(getattr(w, "path", w.name))
    return bad


class Checkpointer(keras.callbacks.Callback):
    """Saves the whole model (weights, optimizer state, config) as `.keras` at the end of each epoch.

    Writes `ckpt-{step:08d}.keras` through a temporary file and an atomic rename, then updates
    `checkpoint.json` the same way, so a process killed at any moment leaves the previous
    checkpoint whole. Keeps the newest `keep` of the files it wrote (and of `resumed_from`, the
    checkpoint this run continues), and never deletes another (an earlier run's). The step is the
    optimizer's iteration count.

    With `config` (the run's config), each checkpoint has it recorded beside it,
    `ckpt-{step:08d}.config.json`, written before the checkpoint itself: a resumed run compares its
    own config with it (`keras_eqssl.resume`).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        keep: int = 2,
        config=None,
        resumed_from: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.keep = keep
        self.config = config
        # only these are ever deleted: the files this run wrote, and the one it resumed from
        self.written: list[pathlib.Path] = [pathlib.Path(resumed_from)] if resumed_from else []

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def save(self) -> str:
        """Writes the checkpoint of the current step; `NonFiniteLossError` (and nothing written)
        when a weight is NaN or Inf, so every checkpoint on disk is one to resume from."""
        self.directory.mkdir(parents=True, exist_ok=True)
        step = int(self.model.optimizer.iterations.numpy())
        bad = non_finite_weights(self.model)
        if bad:
            where = _last_good(self.directory)
            raise NonFiniteLossError(
                f"{len(bad)} of {len(self.model.weights)} weights are NaN or Inf at step {step} (e.g. {', '.join(bad[:3])}); "
                f"no checkpoint was written{where}. Lower the learning rate, check the data, or use float32."
            )
        name = f"ckpt-{step:08d}.keras"
        try:  # each write leaves no temporary when it fails
            if self.config is not None:
                write_config(self.directory / name, self.config)
            save_atomically(self.model, self.directory / name)
            write_text_atomically(self.directory / CHECKPOINT_INDEX, json.dumps({"step": step, "file": name}) + "\n")
        except OSError as err:  # disk full, permissions, quota: name the file, leave no half-written one
            raise CheckpointWriteError(
                f"could not write checkpoint {self.directory / name} at step {step}: {err.strerror or err}"
                f"{_last_good(self.directory)}. Free space in (or fix) {self.directory}, then rerun to resume."
            ) from err
        self.written.append(self.directory / name)
        for old in self.written[: -self.keep]:  # never a checkpoint this run did not write
            delete_checkpoint(old)
        self.written = self.written[-self.keep :]
        return str(self.directory / name)


def denormalize(images, mean, std) -> np.ndarray:
    """Normalised images back to [0, 1] for display."""
    return np.clip(np.asarray(images) * np.asarray(std) + np.asarray(mean), 0.0, 1.0)


class ReconstructionImages(keras.callbacks.Callback):
    """Logs `SSLModel.reconstructions` of a fixed batch to TensorBoard every `every` steps.

    Each image shows the target (top) above the reconstruction (bottom), for up to `max_images`
    pairs, under the tag `reconstruction/<objective>_<view>`.
    """

    def __init__(self, log_dir: str | os.PathLike, batch: dict, every: int = 100, max_images: int = 4):
        super().__init__()
        self.batch = tf.nest.map_structure(lambda t: t[:max_images], batch)
        self.every = int(every)
        self.max_images = max_images
        self.writer = tf.summary.create_file_writer(str(pathlib.Path(log_dir) / "images"))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.every and step % self.every == 0:
            self.write(step)

    def write(self, step: int) -> None:
        recons = self.model.reconstructions(self.batch)
        with self.writer.as_default(step=step):
            for name, (x_hat, target) in recons.items():
                both = np.concatenate(
                    [
                        denormalize(target, self.model.mean, self.model.std),
                        denormalize(x_hat, self.model.mean, self.model.std),
                    ],
                    axis=1,
                )
                tf.summary.image(f"reconstruction/{name}", both, max_outputs=self.max_images)
        self.writer.flush()


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_s` to the batch logs: source images trained per second over the last
    `every` steps (the global batch `batch_size` per step), which TensorBoard writes as
    `batch_images_per_s` when it logs batches (not on an epoch's last step: see `last_step_of_epoch`).

    The input pipeline runs ahead of the step (prefetched), so this is what it supplied and the
    step consumed together: when it is well below the step's own rate (`tools/bench_train.py`,
    or `tools/bench_pipeline.py`'s consume column), the run waits for data. Timed between batch
    ends with `time.perf_counter` (nothing added to the step); each epoch's first window starts
    after its first step, so tracing and the checkpoint written at an epoch's end are left out.

    Example:
    >>> meter = Throughput(batch_size=64, every=2)
    >>> logs = {}
    >>> for step in range(5):
    ...     meter.on_train_batch_end(step, logs)
    >>> meter.images_per_s > 0 and logs["images_per_s"] == meter.images_per_s
    True
    """

    def __init__(self, batch_size: int, every: int = 100):
        super().__init__()
        self.batch_size, self.every = int(batch_size), max(1, int(every))
        self.images_per_s: float | None = None
        self._start: tuple[int, float] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._start is None:
            self._start = (batch, now)
        elif batch - self._start[0] >= self.every:
            steps, seconds = batch - self._start[0], now - self._start[1]
            self.images_per_s = steps * self.batch_size / max(seconds, 1e-9)
            self._start = (batch, now)
        if logs is not None and self.images_per_s is not None and not last_step_of_epoch(self.params, batch):
            logs["images_per_s"] = self.images_per_s


def last_step_of_epoch(params: dict | None, batch: int) -> bool:
    """Whether `batch` ends the epoch of `fit`'s `params`: a callback adding numbers to a step's logs
    leaves that step's alone, since `fit` takes them as the epoch's logs (and its History)."""
    steps = (params or {}).get("steps")
    return bool(steps) and batch + 1 >= steps
