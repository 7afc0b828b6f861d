"""Read a PyTorch checkpoint (`.pth` / `.pt`) into NumPy arrays without importing torch.

PyTorch (>= 1.6) saves with `torch.save` as a zip archive: `<name>/data.pkl` is a pickle whose
tensors refer to raw little-endian storages `<name>/data/<key>`. This module unpickles it with a
restricted unpickler that rebuilds each tensor as a NumPy array (dtype, shape, strides and offset
as saved) and refuses every class it does not know, so a checkpoint cannot run code. Objects the
checkpoints of SSL repositories commonly hold beside the weights (`argparse.Namespace` of the run's
arguments, NumPy scalars, optimizer state) are read as plain Python values.

The legacy (pre-1.6, non-zip) format is read through `torch.load(weights_only=True)` when torch
is installed (`pip install -e ".[parity]"`), and is otherwise refused with a message saying so.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

# torch storage class name -> NumPy dtype of its raw bytes.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 below
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

# Keys under which training scripts commonly nest the model's state dict.
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "student", "teacher", "net", "network")


class _StorageType:
    """Stands for a `torch.*Storage` class inside the pickle: it only carries the dtype."""

    def __init__(self, name: str):
        if name not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported tensor storage type torch.{name}")
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Unknown:
    """A pickled object of a class outside the allow-list, kept as its name and state (never run)."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.state = args, None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<unread {self.qualname}>"


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return np.array(storage[offset])
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * storage.itemsize for s in stride), writeable=False
    )
    return np.array(view)  # contiguous, owns its memory


def _rebuild_parameter(data, *_unused):
    return data


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles `data.pkl` of a torch zip checkpoint with tensors as NumPy arrays."""

    def __init__(self, file: BinaryIO, archive: zipfile.ZipFile, root: str, source: str):
        super().__init__(file)
        self.archive, self.root, self.source = archive, root, source
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "torch" and name in ("float32", "float16", "bfloat16", "float64", "int64", "uint8", "bool"):
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("argparse", "Namespace"):
            return _Namespace
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return _numpy_scalar
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if module == "builtins" and name in _BUILTINS:
            return _BUILTINS[name]
        return type(name, (_Unknown,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self.source}: unknown persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if isinstance(storage_type, str):  # torch >= 2.x may pickle the dtype instead of a class
            storage_type = _StorageType({"float32": "FloatStorage", "float64": "DoubleStorage"}.get(storage_type, ""))
        if key not in self.storages:
            try:
                raw = self.archive.read(f"{self.root}/data/{key}")
            except KeyError as e:
                raise ValueError(f"{self.source}: the archive has no storage {self.root}/data/{key}") from e
            self.storages[key] = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
        storage = self.storages[key]
        if storage_type.name == "BFloat16Storage":
            return (storage.astype(np.uint32) << 16).view(np.float32)
        return storage


class _Namespace(dict):
    """An `argparse.Namespace` read as the dict of its attributes."""

    def __setstate__(self, state):
        self.update(state)


_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice, "tuple": tuple, "list": list, "dict": dict}


def _numpy_scalar(dtype, data=None):
    return np.frombuffer(data, dtype=dtype)[0] if data is not None else dtype.type()


def read_state_dict(source: str | os.PathLike | BinaryIO | bytes) -> Any:
    """Reads a `torch.save` checkpoint as nested Python containers with NumPy arrays for tensors.

    Args:
        source: a path, an open binary file, or the bytes of a checkpoint.

    Returns:
        What was saved: usually a dict of name -> `np.ndarray` (a state dict), or a dict that
        nests one (`{"model": ..., "epoch": ...}`; see `state_dict_from`). Tensors keep their
        dtype (bfloat16 is widened to float32) and shape; an `argparse.Namespace` becomes a dict.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a torch checkpoint, or is in the legacy format and torch is
            not installed.

    Examples:

    ```python
    from keras_eqssl.nn import read_state_dict, state_dict_from

    weights = state_dict_from(read_state_dict("resnet18.pth"))
    weights["conv1.weight"].shape  # (64, 3, 7, 7)
    ```
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else "<checkpoint bytes>"
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        raise FileNotFoundError(f"No checkpoint at {name}")
    if not zipfile.is_zipfile(source):
        return _read_legacy(source, name)
    if hasattr(source, "seek"):
        source.seek(0)
    with zipfile.ZipFile(source) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if not pickles:
            raise ValueError(f"{name}: a zip archive without '<name>/data.pkl' is not a torch checkpoint")
        root = pickles[0][: -len("/data.pkl")]
        with archive.open(pickles[0]) as f:
            return _StateDictUnpickler(io.BytesIO(f.read()), archive, root, name).load()


def _read_legacy(source, name: str) -> Any:
    try:
        import torch
    except ImportError as e:
        raise ValueError(
            f"{name}: not a zip-format torch checkpoint (torch >= 1.6 saves as zip). Reading the legacy "
            'format needs torch: pip install -e ".[parity]", or re-save it with torch.save(...) in torch >= 1.6.'
        ) from e
    if hasattr(source, "seek"):
        source.seek(0)
    obj = torch.load(source, map_location="cpu", weights_only=True)
    return _to_numpy(obj)


def _to_numpy(obj):
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):
        return obj.detach().float().numpy() if str(obj.dtype) == "torch.bfloat16" else obj.detach().numpy()
    if isinstance(obj, Mapping):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def state_dict_from(checkpoint: Any, key: str | None = None, strip_prefix: str | None = None) -> dict[str, np.ndarray]:
    """The flat name -> array state dict inside a checkpoint read by `read_state_dict`.

    Args:
        checkpoint: what `read_state_dict` returned (or a state dict already).
        key: the entry that holds the weights (`"model"`, `"teacher"`, ...). `None` takes the
            checkpoint itself when its values are arrays, else the first of `STATE_DICT_KEYS` found.
        strip_prefix: a prefix removed from every name that starts with it (`"module."` for
            `DistributedDataParallel` checkpoints). `None` strips `"module."` when every name has it.

    Raises:
        KeyError: `key` is missing, or no entry holds a state dict; the message lists the keys.
    """
    obj = checkpoint
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
            raise KeyError(f"The checkpoint has no entry {key!r}; it has {keys}")
        obj = obj[key]
    elif isinstance(obj, Mapping) and not any(isinstance(v, np.ndarray) for v in obj.values()):
        found = [k for k in STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)]
        if not found:
            raise KeyError(f"No state dict found in the checkpoint; its keys are {sorted(obj)}: pass key=...")
        obj = obj[found[0]]
    weights = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if strip_prefix is None and weights and all(k.startswith("module.") for k in weights):
        strip_prefix = "module."
    if strip_prefix:
        weights = {(k[len(strip_prefix) :] if k.startswith(strip_prefix) else k): v for k, v in weights.items()}
    return weights


def select_prefix(state_dict: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries whose names start with `prefix`, with the prefix removed (`"backbone."` -> the backbone's)."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
