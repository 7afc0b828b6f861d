"""Bad input to the main job is an `InputError` naming the field, file or directory (the CLI prints
it as one line and exits 2): a model the config cannot build, an empty stream, a workdir that
cannot be written or is in use, a failed checkpoint write."""

from __future__ import annotations

import fcntl
import os

import pytest
from test_cli import run_cli
from train_helpers import load_config

from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError, InputError


def _photos():
    config = get_config()
    config.data.source = "skimage_photos"
    config.model.width = 0.0625
    return config


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(split=(64, 64)), r"split=\(64, 64\).*does not fit the backbone's 32 channels"),
        (dict(backbone="vit_tiny", split=(16, 16), size=30), r"vit_tiny.*augment.size=30.*grid"),
    ],
)
def test_a_model_the_config_cannot_build_is_a_config_error_naming_the_fields(change, named):
    from keras_eqssl.methods.factory import model_from_config

    config = _photos()
    config.model.split = change["split"]
    config.model.backbone = change.get("backbone", config.model.backbone)
    config.augment.size = change.get("size", config.augment.size)
    with pytest.raises(ConfigError, match=named):
        model_from_config(config)


def test_an_empty_stream_and_a_missing_root_are_config_errors(tmp_path):
    import tensorflow as tf

    from keras_eqssl.data.train_batches import first_batch, threedie_root

    with pytest.raises(ConfigError, match="fewer images than one batch.*data.batch_size"):
        first_batch(tf.data.Dataset.range(0))
    config = get_config()
    config.data.threedie.root = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"config.data.threedie.root=.*nope.*is not a directory"):
        threedie_root(config)


def test_a_workdir_in_use_or_unwritable_is_refused_before_any_work(tmp_path):
    from keras_eqssl.cli.train import _lock_workdir

    (tmp_path / "run").mkdir()
    held = open(tmp_path / "run" / ".lock", "a+")  # noqa: SIM115  (another process's run holds the lock)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(ConfigError, match="another keras-eqssl-train is running in"):
            _lock_workdir(str(tmp_path / "run"))
    finally:
        held.close()
    _lock_workdir(str(tmp_path / "run")).close()  # free again once the first run ended
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be written"):
        _lock_workdir(str(blocker / "run"))  # a path under a file


def _model_on_a_full_disk(monkeypatch):
    """A tiny compiled model whose `save` writes part of the file, then fails with ENOSPC."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")

    def disk_full(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", disk_full)
    return model


def test_a_failed_checkpoint_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from keras_eqssl.methods.callbacks import Checkpointer, CheckpointWriteError

    checkpointer = Checkpointer(tmp_path, config=get_config())
    checkpointer.set_model(_model_on_a_full_disk(monkeypatch))
    with pytest.raises(CheckpointWriteError, match=r"ckpt-00000000.keras at step 0: No space left on device"):
        checkpointer.save()
    assert isinstance(CheckpointWriteError("x"), InputError)
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_a_failed_final_model_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from keras_eqssl.cli.train import _save_model
    from keras_eqssl.methods.callbacks import ModelWriteError

    final = tmp_path / "model.keras"
    with pytest.raises(ModelWriteError, match=rf"{final}: No space left on device.*rerun the same command") as err:
        _save_model(_model_on_a_full_disk(monkeypatch), str(final))
    assert isinstance(err.value, InputError)  # the CLI prints it as one line and exits 2
    assert os.listdir(tmp_path) == []  # neither the model nor a 13 MB temporary beside it


def test_skip_bad_is_a_config_key_the_hint_can_name():
    assert get_config().data.skip_bad is False


def test_the_cli_prints_an_input_error_as_one_line_and_exits_2(tmp_path):
    held = open(tmp_path / ".lock", "a+")  # noqa: SIM115
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        result = run_cli("train", "--config.data.source=skimage_photos", f"--config.workdir={tmp_path}")
    finally:
        held.close()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: another keras-eqssl-train is running in")


def test_stl_batch_that_leaves_a_replica_an_odd_batch_is_refused_before_training():
    from keras_eqssl.cli.train import _check_replica_batch

    config = load_config("stl")
    config.data.batch_size = 12
    _check_replica_batch(config, 2)  # 6 per replica: pairs stay whole
    with pytest.raises(ConfigError, match=r"batch_size=12 over 4 replica\(s\) with config.model.stl: .*even; it is 3"):
        _check_replica_batch(config, 4)
    with pytest.raises(ConfigError, match="does not split evenly over 5 replicas"):
        _check_replica_batch(config, 5)
