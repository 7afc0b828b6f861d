"""`keras_eqssl.checkpoints`: listing, the newest intact checkpoint, atomic writes that leave no
temporary, the recorded config, the file lock, and removing what a killed process left.

No model is built: a checkpoint here is a zip with the two members a `.keras` archive must hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile

import pytest

from keras_eqssl.checkpoints import (
    DamagedCheckpointError,
    LockBusyError,
    MissingCheckpointError,
    atomic_directory,
    check_archive,
    checkpoint_files,
    config_path,
    delete_checkpoint,
    delete_checkpoints,
    file_lock,
    intact_checkpoints,
    latest_checkpoint,
    read_config,
    remove_temporaries,
    save_atomically,
    write_config,
    write_text_atomically,
)
from keras_eqssl.errors import InputError


class _Model:
    """Stands in for a Keras model: `save` writes a `.keras`-shaped zip, or part of one and then fails."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def save(self, path):
        if self.fail:
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 part")
            raise OSError(28, "No space left on device")
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", "{}")
            archive.writestr("model.weights.h5", b"\x00" * 4096)


def _checkpoints(directory, steps):
    directory.mkdir(parents=True, exist_ok=True)
    for step in steps:
        save_atomically(_Model(), directory / f"ckpt-{step:08d}.keras")
    return [directory / f"ckpt-{step:08d}.keras" for step in steps]


def _cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a copy that stopped halfway


# --- listing ---------------------------------------------------------------------------------------
def test_checkpoints_are_listed_by_step_and_temporaries_are_not_checkpoints(tmp_path):
    assert checkpoint_files(tmp_path / "missing") == [] and latest_checkpoint(tmp_path / "missing") is None
    _checkpoints(tmp_path, [10, 2])
    (tmp_path / ".ckpt-00000012.keras.tmp.keras").write_bytes(b"half")  # a write that was killed
    (tmp_path / "ckpt-final.keras").write_bytes(b"x")  # not a step
    assert [(step, path.name) for step, path in checkpoint_files(tmp_path)] == [
        (2, "ckpt-00000002.keras"),
        (10, "ckpt-00000010.keras"),
    ]
    (tmp_path / "checkpoint.json").write_text(json.dumps({"step": 2, "file": "ckpt-00000002.keras"}))
    assert latest_checkpoint(tmp_path) == {"step": 10, "path": str(tmp_path / "ckpt-00000010.keras")}  # files count


def test_an_index_without_its_files_is_an_error_naming_the_file(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint.json").write_text(json.dumps({"step": 3, "file": "ckpt-00000003.keras"}))
    with pytest.raises(MissingCheckpointError, match="names ckpt-00000003.keras, but .* holds no checkpoint file"):
        latest_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(MissingCheckpointError, match="the index is unreadable") as err:
        latest_checkpoint(tmp_path)
    assert isinstance(err.value, InputError) and isinstance(err.value, FileNotFoundError)


def test_deleting_takes_the_recorded_config_and_the_index_along(tmp_path):
    first, second = _checkpoints(tmp_path, [1, 2])
    write_config(first, {"seed": 1})
    write_config(second, {"seed": 2})
    write_text_atomically(tmp_path / "checkpoint.json", "{}")
    (tmp_path / "notes.txt").write_text("mine")
    delete_checkpoint(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "ckpt-00000002.config.json",
        "ckpt-00000002.keras",
        "notes.txt",
    ]
    assert delete_checkpoints(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# --- intact or damaged -----------------------------------------------------------------------------
def test_a_damaged_newest_checkpoint_is_named_and_the_intact_earlier_one_offered(tmp_path):
    first, second, newest = _checkpoints(tmp_path / "checkpoints", [1, 2, 3])
    check_archive(newest)  # whole: no error
    _cut_in_half(second)
    _cut_in_half(newest)
    assert intact_checkpoints(tmp_path / "checkpoints") == [first]
    with pytest.raises(
        DamagedCheckpointError, match=r"ckpt-00000003.keras is damaged.*newest intact one is .*ckpt-00000001"
    ):
        check_archive(newest)
    _cut_in_half(first)
    with pytest.raises(DamagedCheckpointError, match=r"ckpt-00000001.keras is damaged.*no intact earlier"):
        check_archive(first)
    save_atomically(_Model(), tmp_path / "checkpoints" / "ckpt-00000004.keras")
    final = tmp_path / "model.keras"
    with zipfile.ZipFile(final, "w") as archive:
        archive.writestr("config.json", "{}")  # no weights
    with pytest.raises(DamagedCheckpointError, match=r"lacks \['model.weights.h5'\].*newest intact checkpoint is .*4"):
        check_archive(final)


# --- atomic writes ---------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.keras"
    save_atomically(_Model(), target)
    before = target.read_bytes()
    with pytest.raises(OSError, match="No space left"):
        save_atomically(_Model(fail=True), target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["model.keras"]
    (tmp_path / "taken").mkdir()  # a directory where the file should go: the rename fails
    with pytest.raises(OSError):
        write_text_atomically(tmp_path / "taken", "text")
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "taken"]


def test_an_atomic_directory_replaces_the_old_one_only_when_its_block_ends_well(tmp_path):
    out = tmp_path / "export"
    with atomic_directory(out) as tmp:
        (tmp / "a").write_text("1")
        assert not out.exists()
    assert os.listdir(out) == ["a"]
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("the export failed")
    assert os.listdir(out) == ["a"] and os.listdir(tmp_path) == ["export"]
    with atomic_directory(out) as tmp:
        (tmp / "c").write_text("3")
    assert os.listdir(out) == ["c"] and os.listdir(tmp_path) == ["export"]  # no .export.old-* left


def test_remove_temporaries_deletes_what_a_killed_writer_left_and_nothing_else(tmp_path):
    (kept,) = _checkpoints(tmp_path / "checkpoints", [4])
    write_config(kept, {"seed": 0})
    stale = [
        tmp_path / "checkpoints" / ".ckpt-00000008.keras.tmp.keras",
        tmp_path / "checkpoints" / ".ckpt-00000008.config.json.tmp",
        tmp_path / "checkpoints" / ".checkpoint.json.tmp",
        tmp_path / ".model.keras.tmp.keras",
        tmp_path / ".export.tmp-0123abcd",
        tmp_path / ".export_init.old-0123abcd",
    ]
    for path in stale:
        path.mkdir() if "export" in path.name else path.write_bytes(b"half")
    (tmp_path / ".export.tmp-0123abcd" / "saved_model.pb").write_bytes(b"half")
    (tmp_path / "model.keras").write_bytes(b"x")
    assert sorted(remove_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "model.keras"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "ckpt-00000004.config.json",
        "ckpt-00000004.keras",
    ]
    assert remove_temporaries(tmp_path / "missing") == []


# --- the recorded config ---------------------------------------------------------------------------
def test_the_config_recorded_beside_a_checkpoint(tmp_path):
    checkpoint = tmp_path / "ckpt-00000004.keras"
    assert read_config(checkpoint) is None  # written by a version that recorded none
    written = write_config(checkpoint, {"optim": {"lr": 1e-3}, "seed": 0})
    assert written == config_path(checkpoint) == tmp_path / "ckpt-00000004.config.json"
    assert read_config(checkpoint) == {"optim": {"lr": 1e-3}, "seed": 0}
    written.write_text("{half")
    with pytest.raises(DamagedCheckpointError, match=r"ckpt-00000004.config.json: .*not valid JSON"):
        read_config(checkpoint)


# --- the lock --------------------------------------------------------------------------------------
HOLD = """
import sys
from keras_eqssl.checkpoints import file_lock
with file_lock(sys.argv[1], "busy", "wait"):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_the_lock_refuses_a_second_holder_naming_it_and_is_free_once_let_go(tmp_path):
    lock = tmp_path / "run" / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusyError, match=rf"^the run is busy \(process {holder.pid} holds {lock}\); wait$"):
            with file_lock(lock, "the run is busy", "wait"):
                pass
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and not lock.exists()  # let go: the file is gone with its holder
    with file_lock(lock, "the run is busy", "wait"):
        assert lock.read_text() == f"{os.getpid()}\n"


def test_the_lock_refuses_another_thread_and_nests_in_its_own(tmp_path):
    lock, errors = tmp_path / ".lock", []

    def second():
        try:
            with file_lock(lock, "busy", "wait", error=KeyError):  # the caller's error class
                pass
        except KeyError as err:
            errors.append(err.args[0])

    with file_lock(lock, "busy", "wait"):
        with file_lock(lock, "busy", "wait"):  # the holding thread may take it again
            thread = threading.Thread(target=second)
            thread.start()
            thread.join(60)
        assert lock.exists()  # still held by the outer block
    assert errors == ["busy (another thread of this process holds it); wait"]
    assert not lock.exists()
