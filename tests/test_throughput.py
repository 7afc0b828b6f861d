"""The `Throughput` callback: images/s over windows of steps, added to the step's logs (not the epoch's)."""

from __future__ import annotations

import itertools

import pytest

from keras_eqssl.methods import callbacks
from keras_eqssl.methods.callbacks import Throughput


@pytest.fixture
def clock(monkeypatch):
    """perf_counter advancing 0.5 s per call (one call per batch end)."""
    ticks = itertools.count()
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: 0.5 * next(ticks))


def test_images_per_second_over_each_window(clock):
    meter = Throughput(batch_size=8, every=2)
    seen = []
    for step in range(7):
        logs = {"loss": 1.0}
        meter.on_train_batch_end(step, logs)
        seen.append(logs.get("images_per_s"))
    # the first step starts the clock (tracing is left out); then 2 steps x 8 images per 1 s
    assert seen == [None, None, 16.0, 16.0, 16.0, 16.0, 16.0]


def test_the_epochs_last_step_and_first_window_are_left_alone(clock):
    meter = Throughput(batch_size=4, every=1)
    meter.set_params({"steps": 3})
    logs = [{} for _ in range(3)]
    for step, log in enumerate(logs):
        meter.on_train_batch_end(step, log)
    assert logs == [{}, {"images_per_s": 8.0}, {}]  # fit takes the last step's logs as the epoch's
    meter.on_epoch_begin(1)
    fresh = {}
    meter.on_train_batch_end(0, fresh)
    assert fresh == {"images_per_s": 8.0}  # the previous figure until the new epoch's first window closes
