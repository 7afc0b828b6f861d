"""Writes `torch.save`-format checkpoints from NumPy arrays, without torch, for the loader tests.

The zip layout and pickle opcodes are those torch (>= 1.6) writes: `<root>/data.pkl` holds a
protocol-2 pickle in which each tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks)` and each storage a persistent id
`("storage", torch.FloatStorage, key, "cpu", numel)` whose bytes are `<root>/data/<key>`.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

_STORAGES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
}


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", int(i))


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _tensor(key: str, array: np.ndarray) -> bytes:
    strides = [s // array.itemsize for s in array.strides] if array.ndim else []
    storage = _tuple(
        [_str("storage"), _global("torch", _STORAGES[array.dtype]), _str(key), _str("cpu"), _int(array.size)]
    )
    args = [
        storage + b"Q",  # BINPERSID
        _int(0),
        _tuple([_int(s) for s in array.shape]),
        _tuple([_int(s) for s in strides]),
        b"\x89",  # False: requires_grad
        _global("collections", "OrderedDict") + b")R",  # backward hooks
    ]
    return _global("torch._utils", "_rebuild_tensor_v2") + _tuple(args) + b"R"


def torch_checkpoint_bytes(state_dict: dict[str, np.ndarray], wrap_key: str | None = None) -> bytes:
    """The bytes `torch.save(state_dict)` (or `torch.save({wrap_key: state_dict})`) would write.

    Values are written as contiguous float32/float64/float16/int64 tensors. `wrap_key` nests the
    state dict one level, as training scripts do (`{"model": ...}`).
    """
    body, storages = [], {}
    for i, (name, value) in enumerate(state_dict.items()):
        array = np.array(value, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        storages[str(i)] = array.astype(array.dtype.newbyteorder("<")).tobytes()
        body.append(_str(name) + _tensor(str(i), array))
    pickled = _global("collections", "OrderedDict") + b")R" + b"(" + b"".join(body) + b"u"
    if wrap_key is not None:
        pickled = b"}(" + _str(wrap_key) + pickled + _str("epoch") + _int(7) + b"u"
    pickled = b"\x80\x02" + pickled + b"."
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()
