"""Checkpoint files and the workdir on disk: listing, the newest intact checkpoint, atomic writes,
the config recorded beside a checkpoint, one file lock, and what a killed process leaves behind.

A checkpoint directory holds `ckpt-<step>.keras` (a whole Keras model: weights, optimizer state,
config), beside each `ckpt-<step>.config.json` (the run's config, `CONFIG_SUFFIX`), and
`checkpoint.json` (the last write, `CHECKPOINT_INDEX`). Every file is written to a temporary
beside it (`.NAME.tmp...`) and renamed into place, so a process killed at any moment leaves the
earlier file whole; `remove_temporaries` deletes what such a kill left. `file_lock` is what a
training run holds on its workdir and an export on its output directory. Nothing here builds a
model: the training callbacks (`keras_eqssl.methods.callbacks`), resume
(`keras_eqssl.resume`), the export and the command-line apps build on this module.

Example:

>>> import tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_text_atomically(folder / "ckpt-00000004.keras", "not a model")
>>> write_config(folder / "ckpt-00000004.keras", {"seed": 0}).name
'ckpt-00000004.config.json'
>>> [(step, path.name) for step, path in checkpoint_files(folder)]
[(4, 'ckpt-00000004.keras')]
>>> latest_checkpoint(folder)["step"], read_config(folder / "ckpt-00000004.keras")
(4, {'seed': 0})
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: files are not locked)
    fcntl = None

from keras_eqssl.errors import InputError

CHECKPOINT_INDEX = "checkpoint.json"  # {"step": 6, "file": "ckpt-00000006.keras"}: the last write
CONFIG_SUFFIX = ".config.json"  # ckpt-00000100.keras -> ckpt-00000100.config.json
CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)\.keras")
TEMPORARIES = (".*.tmp*", ".*.old-*")  # `.NAME.tmp...` and `.NAME.old-...`: what the writers below leave if killed


class MissingCheckpointError(InputError, FileNotFoundError):
    """`checkpoint.json` names a checkpoint, but no checkpoint file is left."""


class DamagedCheckpointError(InputError, ValueError):
    """A checkpoint file (or the config recorded beside it) is damaged; the message offers the intact earlier one."""


class LockBusyError(InputError, RuntimeError):
    """Another process, or another thread of this one, holds a `file_lock`; the message names the holder."""


# --- listing --------------------------------------------------------------------------------------
def checkpoint_files(directory: str | os.PathLike | None) -> list[tuple[int, pathlib.Path]]:
    """`(step, path)` of every complete checkpoint file (`ckpt-<step>.keras`) in `directory`, oldest
    first. Temporaries (`.ckpt-*.tmp.keras`, left by a process killed while writing) are not ones."""
    if not directory or not pathlib.Path(directory).is_dir():
        return []
    found = []
    for path in pathlib.Path(directory).glob("ckpt-*.keras"):
        match = CHECKPOINT_NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike | None) -> dict | None:
    """`{"step", "path"}` of the newest checkpoint in `directory`, or None when it has none.

    The files are what counts (`checkpoint.json` only records the last write): a deleted or stale
    index never hides a checkpoint. An index that names a file when no checkpoint file is left
    is an error (`MissingCheckpointError`: something deleted them), not a fresh start.
    """
    files = checkpoint_files(directory)
    if files:
        step, path = files[-1]
        return {"step": step, "path": str(path)}
    index = pathlib.Path(directory) / CHECKPOINT_INDEX if directory else None
    if index is not None and index.exists():
        try:
            named = json.loads(index.read_text())["file"]
        except (ValueError, KeyError, TypeError):
            named = "a checkpoint (the index is unreadable)"
        raise MissingCheckpointError(
            f"{index} names {named}, but {directory} holds no checkpoint file (ckpt-<step>.keras): they were deleted "
            "or moved. Put them back to resume, or start over in another workdir (or with "
            "--config.train.resume=False --config.train.overwrite=True)."
        )
    return None


def delete_checkpoint(path: str | os.PathLike) -> None:
    """Deletes a checkpoint file and the config recorded beside it."""
    pathlib.Path(path).unlink(missing_ok=True)
    config_path(path).unlink(missing_ok=True)


def delete_checkpoints(directory: str | os.PathLike) -> int:
    """Deletes every checkpoint in `directory` (with its recorded config) and the index; returns how many."""
    files = checkpoint_files(directory)
    for _, path in files:
        delete_checkpoint(path)
    (pathlib.Path(directory) / CHECKPOINT_INDEX).unlink(missing_ok=True)
    return len(files)


# --- intact or damaged ----------------------------------------------------------------------------
def check_archive(checkpoint: str | os.PathLike) -> None:
    """`DamagedCheckpointError` unless `checkpoint` is a complete `.keras` archive (a zip with the
    model's config and weights, every member's CRC intact), naming the newest intact one before it."""
    path = pathlib.Path(checkpoint)
    problem = archive_problem(path)
    if problem is None:
        return
    if path.name.startswith("ckpt-"):
        earlier = intact_checkpoints(path.parent, before=path)
        offer = (
            f"the newest intact one is {earlier[-1]}: move {path.name} away to resume from it"
            if earlier
            else "no intact earlier checkpoint is left: start over in another workdir"
        )
    else:  # a run's model.keras: its checkpoints are in checkpoints/ beside it
        kept = intact_checkpoints(path.parent / "checkpoints")
        offer = f"the run's newest intact checkpoint is {kept[-1]}" if kept else "no intact checkpoint is beside it"
    raise DamagedCheckpointError(f"checkpoint {path} is damaged: {problem}; {offer}.")


def archive_problem(path: str | os.PathLike) -> str | None:
    """What makes `path` not a complete `.keras` archive, or None when it is one."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = {"config.json", "model.weights.h5"} - set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"it is not a complete .keras archive ({err})"
    return f"it lacks {sorted(missing)}" if missing else (f"member {bad} is corrupt" if bad else None)


def intact_checkpoints(directory: str | os.PathLike, before: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """The checkpoint files in `directory` (older than `before`) whose archives are whole, oldest first."""
    files = [path for _, path in checkpoint_files(directory)]
    before = pathlib.Path(before) if before is not None else None
    older = files[: files.index(before)] if before in files else files
    return [path for path in older if archive_problem(path) is None]


# --- atomic writes --------------------------------------------------------------------------------
def _temporary(path: pathlib.Path, tag: str) -> pathlib.Path:
    """`.NAME.<tag>` beside `path`: a name `TEMPORARIES` matches and `checkpoint_files` never lists."""
    return path.with_name(f".{path.name}.{tag}")


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` through a temporary file beside it (`.NAME.tmp`) and an atomic rename;
    a write that fails removes the temporary and raises its `OSError`."""
    _write_beside(path, "tmp", lambda tmp: tmp.write_text(text))


def save_atomically(model, path: str | os.PathLike) -> None:
    """`model.save(path)` through a temporary file beside it (`.NAME.tmp.keras`) and an atomic
    rename, so a process killed at any moment leaves either the old file or the new one. A write
    that fails (disk full, permissions) removes the temporary and raises its `OSError`."""
    _write_beside(path, "tmp.keras", model.save)  # Keras saves only to a name that ends in .keras


def _write_beside(path: str | os.PathLike, tag: str, write: Callable[[pathlib.Path], object]) -> None:
    """`write(tmp)` to the temporary `.NAME.<tag>` beside `path`, then an atomic rename onto `path`;
    a write that fails removes the temporary and raises its `OSError`."""
    path = pathlib.Path(path)
    tmp = _temporary(path, tag)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """A new directory beside `path` (`.NAME.tmp-<random>`) to fill in the block; when the block
    ends without an error it replaces `path` (an existing `path` is first renamed to
    `.NAME.old-<random>`, then deleted). The temporary is deleted whatever happens.

    Its mode is the usual one (not `tempfile.mkdtemp`'s 0700, which would keep, say, a serving
    user out of an export)."""
    path = pathlib.Path(path)
    tmp = _temporary(path, f"tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _temporary(path, f"old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_temporaries(workdir: str | os.PathLike) -> list[pathlib.Path]:
    """Deletes what processes killed while writing left in `workdir` and `workdir/checkpoints` (the
    temporaries of the writers above, never a checkpoint) and returns them. Only safe while no
    other process writes there: hold the workdir's `file_lock`."""
    stale = []
    for folder in (pathlib.Path(workdir), pathlib.Path(workdir) / "checkpoints"):
        if folder.is_dir():
            stale += [path for pattern in TEMPORARIES for path in sorted(folder.glob(pattern))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return stale


# --- the config recorded beside a checkpoint ------------------------------------------------------
def config_path(checkpoint: str | os.PathLike) -> pathlib.Path:
    """Where the run config of checkpoint `ckpt-<step>.keras` is recorded."""
    path = pathlib.Path(checkpoint)
    return path.with_name(path.name.removesuffix(".keras") + CONFIG_SUFFIX)


def write_config(checkpoint: str | os.PathLike, config) -> pathlib.Path:
    """Records `config` (a ConfigDict or a dict) for `checkpoint`, atomically; returns the file."""
    path = config_path(checkpoint)
    tree = config.to_dict() if hasattr(config, "to_dict") else config
    write_text_atomically(path, json.dumps(tree, indent=1, sort_keys=True) + "\n")
    return path


def read_config(checkpoint: str | os.PathLike) -> dict | None:
    """The config recorded with `checkpoint`, or None when it has none (written by an older version);
    `DamagedCheckpointError` when it is not valid JSON."""
    path = config_path(checkpoint)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise DamagedCheckpointError(
            f"{path}: the config recorded with the checkpoint is not valid JSON ({err})"
        ) from err


# --- one lock for a workdir or an export directory ------------------------------------------------
_HELD: dict[str, list] = {}  # lock file -> [thread id, depth, descriptor]: the locks this process holds
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike, busy: str, advice: str, error: type[Exception] = LockBusyError
) -> Iterator[None]:
    """Holds an exclusive lock on the file `path` for the block (an `flock`; the file is created,
    its parent too, and removed when the lock is let go).

    Another process, or another thread of this one, that asks for it meanwhile gets `error` at
    once: "`busy` (process 1234 holds PATH); `advice`". The thread that holds it may take it
    again inside the block (nested blocks). Where the system has no `flock` (Windows) nothing is
    locked. An `OSError` (the parent cannot be created, say) is raised as it is.

    >>> import tempfile, threading
    >>> lock = pathlib.Path(tempfile.mkdtemp()) / ".lock"
    >>> def second(errors):
    ...     try:
    ...         with file_lock(lock, "the folder is in use", "try later"):
    ...             pass
    ...     except LockBusyError as err:
    ...         errors.append(str(err))
    >>> errors = []
    >>> with file_lock(lock, "the folder is in use", "try later"):
    ...     thread = threading.Thread(target=second, args=(errors,))
    ...     thread.start(); thread.join()
    >>> errors
    ['the folder is in use (another thread of this process holds it); try later']
    >>> lock.exists()
    False
    """
    lock = pathlib.Path(os.path.abspath(path))  # one key however the path is spelled
    key, me = str(lock), threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None and held[0] == me:
            held[1] += 1
        elif held is not None:
            raise error(f"{busy} (another thread of this process holds it); {advice}")
        else:
            lock.parent.mkdir(parents=True, exist_ok=True)
            _HELD[key] = [me, 1, _acquire(lock, busy, advice, error)]
    try:
        yield
    finally:
        with _HELD_GUARD:
            held = _HELD[key]
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                if held[2] is not None:
                    with contextlib.suppress(FileNotFoundError):
                        lock.unlink()  # before letting go: a waiter sees a new file (below)
                    os.close(held[2])


def _acquire(lock: pathlib.Path, busy: str, advice: str, error: type[Exception]) -> int | None:
    """An open descriptor of `lock` holding its exclusive `flock`, with this process's id written in."""
    if fcntl is None:  # pragma: no cover
        return None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise error(f"{busy} ({_holder(lock)} holds {lock}); {advice}") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder removed the file as it let go: lock the new one


def _holder(lock: pathlib.Path) -> str:
    """The holder of `lock` as its error names it: "process <id>" (what the holder wrote in), else "another process"."""
    try:
        pid = lock.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"
