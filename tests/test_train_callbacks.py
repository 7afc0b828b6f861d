"""Training callbacks: a non-finite loss term stops the run by name and step; checkpoints stay intact."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.checkpoints import checkpoint_files, latest_checkpoint
from keras_eqssl.methods import PairModel, ParameterPrediction, VICReg
from keras_eqssl.methods.callbacks import Checkpointer, NonFiniteLossError, StopOnNonFinite
from keras_eqssl.nn import backbone_from_name

BATCH, SIZE, NAN_STEP = 8, 16, 5
SPECS = {v: [ParamSpec("angle", (1,), "continuous", -1.0, 1.0)] for v in ("v1", "v2")}


def _model():
    """A one-block ResNet (32 channels: the split's 16 + 16) with BatchNorm; small, since saving and tracing
    cost seconds per layer and the callbacks do not depend on the model's depth."""
    keras.utils.set_random_seed(0)
    model = PairModel(
        backbone_from_name("resnet18", stem="cifar", stackwise_num_blocks=[1], stackwise_num_filters=[32]),
        VICReg(projector_units=[32, 32]),
        objectives=[ParameterPrediction(["angle"], hidden_units=[16])],
        split=(16, 16),
        image_size=SIZE,
        param_specs=SPECS,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def _batches(nan_step=None):
    """Batch k (1-based step) has finite params, except step `nan_step` whose parameter target is NaN."""
    rng = np.random.default_rng(0)

    def make(k):
        angle = rng.uniform(-1, 1, (BATCH, 1)).astype("float32")
        if k == nan_step:
            angle[0, 0] = np.nan
        views = rng.random((2, BATCH, SIZE, SIZE, 3)).astype("float32")
        return {
            "views": {"v1": views[0], "v2": views[1]},
            "params": {"v1": {"angle": angle}, "v2": {"angle": -angle}},
        }

    items = [make(k) for k in range(1, 9)]
    return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *x: np.stack(x), *items)).repeat()


def test_nan_stops_naming_the_term_and_step_and_keeps_the_last_checkpoint(tmp_path):
    model = _model()
    with pytest.raises(NonFiniteLossError) as err:
        model.fit(
            _batches(nan_step=NAN_STEP),
            epochs=4,
            steps_per_epoch=2,
            callbacks=[StopOnNonFinite(tmp_path), Checkpointer(tmp_path)],
            verbose=0,
        )
    message = str(err.value)
    assert "'params_v1_angle'" in message and f"at step {NAN_STEP}" in message, message
    assert "vicreg" not in message  # the invariance loss stayed finite: only the culprit is named
    kept = latest_checkpoint(tmp_path)
    assert kept["step"] == 4 and kept["path"] in message
    restored = keras.models.load_model(kept["path"])
    assert int(restored.optimizer.iterations.numpy()) == 4
    assert all(np.isfinite(w.numpy()).all() for w in restored.weights)


def test_checkpointer_is_atomic_and_keeps_the_newest(tmp_path):
    model = _model()
    model.fit(_batches(), epochs=3, steps_per_epoch=2, callbacks=[Checkpointer(tmp_path, keep=2)], verbose=0)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["checkpoint.json", "ckpt-00000004.keras", "ckpt-00000006.keras"]  # no temporaries left
    assert json.loads((tmp_path / "checkpoint.json").read_text()) == {"step": 6, "file": "ckpt-00000006.keras"}
    restored = keras.models.load_model(latest_checkpoint(tmp_path)["path"])
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpointer_refuses_non_finite_weights_and_names_the_last_good_one(tmp_path):
    model = _model()
    model.fit(_batches(), epochs=1, steps_per_epoch=2, callbacks=[Checkpointer(tmp_path)], verbose=0)
    weight = model.backbone.weights[0]
    weight.assign(np.full(weight.shape, np.nan, "float32"))  # as after an update with lr = nan
    checkpointer = Checkpointer(tmp_path)
    checkpointer.set_model(model)
    with pytest.raises(NonFiniteLossError, match=r"1 of \d+ weights are NaN or Inf at step 2") as err:
        checkpointer.save()
    assert "ckpt-00000002.keras (step 2)" in str(err.value) and weight.path in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "ckpt-00000002.keras"]


def test_checkpoints_are_found_from_the_files_and_never_deleted_by_a_later_run(tmp_path):
    first = _model()
    first.fit(_batches(), epochs=2, steps_per_epoch=2, callbacks=[Checkpointer(tmp_path, keep=2)], verbose=0)
    (tmp_path / "checkpoint.json").unlink()  # what an old error message suggested
    assert latest_checkpoint(tmp_path) == {"step": 4, "path": str(tmp_path / "ckpt-00000004.keras")}
    (tmp_path / "checkpoint.json").write_text(json.dumps({"step": 2, "file": "ckpt-00000002.keras"}))
    assert latest_checkpoint(tmp_path)["step"] == 4  # a stale index does not hide the newest file
    (tmp_path / ".ckpt-00000006.keras.tmp.keras").write_bytes(b"half")  # a write that was killed
    assert [step for step, _ in checkpoint_files(tmp_path)] == [2, 4]
    # a fresh run in the same directory (a new model, step 0 again) keeps only ITS newest file
    # and leaves the earlier run's checkpoints alone
    second = _model()
    second.fit(_batches(), epochs=3, steps_per_epoch=3, callbacks=[Checkpointer(tmp_path, keep=1)], verbose=0)
    assert [step for step, _ in checkpoint_files(tmp_path)] == [2, 4, 9]  # it wrote 3, 6, 9


def test_training_refuses_to_start_over_on_checkpoints_unless_told_to_overwrite(tmp_path):
    from keras_eqssl.cli.train import _clear_or_refuse
    from keras_eqssl.default_config import get_config
    from keras_eqssl.errors import ConfigError

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "ckpt-00000004.keras").write_bytes(b"x")
    config = get_config()
    config.train.resume = True
    _clear_or_refuse(config, str(ckpt))  # resuming: nothing to do
    config.train.resume = False
    with pytest.raises(ConfigError, match=r"holds 1 checkpoint\(s\), the newest at step 4.*overwrite=True"):
        _clear_or_refuse(config, str(ckpt))
    assert (ckpt / "ckpt-00000004.keras").exists()
    config.train.overwrite = True
    _clear_or_refuse(config, str(ckpt))
    assert checkpoint_files(ckpt) == []


class _SignalAt(keras.callbacks.Callback):
    """Sends this process `signum` at the end of step `step` (as a user's Ctrl-C between steps)."""

    def __init__(self, step, signum):
        super().__init__()
        self.step, self.signum = step, signum

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            import os

            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("name", ["SIGINT", pytest.param("SIGTERM", marks=pytest.mark.slow)])
def test_a_signal_mid_epoch_stops_fit_after_the_step_with_a_checkpoint_of_it(tmp_path, name):
    import signal

    from keras_eqssl.methods.callbacks import StopOnSignal

    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    stopper = StopOnSignal()
    model = _model()
    callbacks = [_SignalAt(3, signum), stopper, Checkpointer(tmp_path)]
    model.fit(_batches(), epochs=2, steps_per_epoch=4, callbacks=callbacks, verbose=0)
    assert stopper.interrupted == signum
    assert int(model.optimizer.iterations.numpy()) == 3  # the epoch of 4 steps was cut after step 3
    assert [step for step, _ in checkpoint_files(tmp_path)] == [3]
    assert signal.getsignal(signum) is before  # the handlers are put back


def test_a_signal_between_two_fits_under_held_is_recorded_and_the_next_fit_stops_after_one_step(tmp_path):
    import os
    import signal

    from keras_eqssl.methods.callbacks import StopOnSignal

    before = signal.getsignal(signal.SIGINT)
    stopper = StopOnSignal()
    model = _model()
    callbacks = [stopper, Checkpointer(tmp_path)]
    with stopper.held():
        model.fit(_batches(), epochs=1, steps_per_epoch=2, callbacks=callbacks, verbose=0)
        assert stopper.interrupted is None
        os.kill(os.getpid(), signal.SIGINT)  # between the fits: no KeyboardInterrupt
        assert stopper.interrupted == signal.SIGINT
        model.fit(_batches(), epochs=3, steps_per_epoch=2, initial_epoch=1, callbacks=callbacks, verbose=0)
        assert signal.getsignal(signal.SIGINT) is before  # the first signal put the handlers back
    assert int(model.optimizer.iterations.numpy()) == 3  # the second fit stopped after its first step
    assert [step for step, _ in checkpoint_files(tmp_path)] == [2, 3]
    assert signal.getsignal(signal.SIGINT) is before
