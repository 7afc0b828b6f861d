"""The listing of a 3DIEBench root: which objects a split holds, their labels and view counts, checked.

On-disk format (Garrido et al. 2023, facebookresearch/SIE; our renderer writes the same):

    <root>/train_images.npy   (N,) strings, object paths like "/02691156/dc8d.../"
    <root>/train_labels.npy   (N,) int64 class labels
    <root>/val_images.npy, <root>/val_labels.npy
    <root>/<synset>/<object_id>/image_<k>.jpg    k = 0..V-1, all the same size (256 px in the real set)
    <root>/<synset>/<object_id>/latent_<k>.npy   float32 (7,): rotation x, y, z (extrinsic "xyz"),
                                                 floor hue, spot theta, spot phi, spot hue

`list_objects` reads the split files and lists each object directory (file names only) at
construction, so a missing object, a missing or extra image/latent or an object with fewer than
two views is reported, naming the file, before training starts. With `check_files=True` it also
reads each JPEG's header and end and each latent (156 bytes), so corrupt or truncated JPEGs, mixed
image sizes and malformed latents are reported too (on the full 2.6M-file set this reads about
5 GB less than decoding would, but still takes minutes; pass `check_files=False` to leave those
checks to the in-graph asserts of the reader, which also name the file).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_eqssl.data.image_files import BadFileError, check_image_file, check_many

SPLITS = ("train", "val")
LATENT_SIZE = 7
_IMAGE_RE = re.compile(r"image_(\d+)\.jpg")
_LATENT_RE = re.compile(r"latent_(\d+)\.npy")
_FORMAT = (
    "a 3DIEBench root holds train_images.npy, train_labels.npy, val_images.npy, val_labels.npy and "
    "SYNSET/OBJECT/image_k.jpg + latent_k.npy"
)


@dataclasses.dataclass(frozen=True)
class ThreeDIEObjects:
    """The checked listing of one split (only names and numbers: no images or latents).

    Attributes:
        root: the dataset root.
        split: "train" or "val".
        object_ids: N object paths relative to the root, "synset/object".
        labels: (N,) int64.
        num_views: (N,) int32, V of each object (>= 2).
        indices: (N,) int64, each object's position in the split file (the pair-sampling key, so
            skipping a bad object does not change the pairs drawn for the others).
        image_size: (height, width) shared by all images.
        latent_dtype: "float32" or "float64", as stored in the latent files.
        skipped: (path, reason) of each bad file whose object was skipped (`skip_bad=True`).
    """

    root: str
    split: str
    object_ids: tuple[str, ...]
    labels: np.ndarray
    num_views: np.ndarray
    indices: np.ndarray
    image_size: tuple[int, int]
    latent_dtype: str
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.object_ids)


def latent_header_size(data: bytes, path: str) -> tuple[int, str]:
    """(offset of the data, dtype name) of a 3DIEBench `.npy` latent, checking it holds 7 floats."""
    if len(data) < 10 or data[:6] != b"\x93NUMPY":
        raise BadFileError(path, f"not a .npy file (first bytes {data[:8]!r})")
    bio = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(bio)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(bio)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(bio)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as err:
        raise BadFileError(path, f"corrupt .npy header ({err})") from err
    if dtype not in (np.dtype("<f4"), np.dtype("<f8")) or shape != (LATENT_SIZE,):
        raise BadFileError(path, f"expected a float32 latent of shape (7,), found {dtype} {shape}")
    offset = bio.tell()
    if len(data) != offset + LATENT_SIZE * dtype.itemsize:
        raise BadFileError(
            path, f"wrong length: {len(data)} bytes, expected {offset + LATENT_SIZE * dtype.itemsize} for {dtype} (7,)"
        )
    return offset, dtype.name


def _npy_header(dtype: str) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(LATENT_SIZE, dtype))
    return buffer.getvalue()[: -LATENT_SIZE * np.dtype(dtype).itemsize]


_KNOWN_HEADERS = {_npy_header(d): d for d in ("<f4", "<f8")}  # what np.save writes: skip parsing it


def check_latent_file(path: str) -> str:
    """Reads one latent file and checks it is 7 finite floats; returns its dtype name ("float32")."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as err:
        raise BadFileError(path, f"cannot read ({err.strerror or err})") from err
    known = _KNOWN_HEADERS.get(data[:128])
    if known is not None and len(data) == 128 + LATENT_SIZE * np.dtype(known).itemsize:
        offset, dtype = 128, np.dtype(known).name
    else:
        offset, dtype = latent_header_size(data, path)
    values = np.frombuffer(data[offset:], dtype=np.dtype(dtype).newbyteorder("<"))
    if not np.all(np.isfinite(values)):
        raise BadFileError(path, f"non-finite latent values {values.tolist()}")
    return dtype


def _load_split_file(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise BadFileError(path, f"missing split file; {_FORMAT}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:  # an object array (strings saved as Python objects)
        return np.load(path, allow_pickle=True)
    except OSError as err:
        raise BadFileError(path, f"cannot read the split file ({err})") from err


def read_split(root: str, split: str) -> tuple[list[str], np.ndarray]:
    """The split files: object ids ("synset/object", N) and labels ((N,) int64), checked."""
    if split not in SPLITS:
        raise ValueError(f"3DIEBench split must be one of {SPLITS}; received split={split!r}.")
    if not os.path.isdir(root):
        raise BadFileError(root, f"3DIEBench root is not a directory; {_FORMAT}")
    images_path = os.path.join(root, f"{split}_images.npy")
    labels_path = os.path.join(root, f"{split}_labels.npy")
    if not os.path.isfile(images_path):
        found = sorted(os.listdir(root))[:8]
        raise BadFileError(images_path, f"missing; is {root} a 3DIEBench root? {_FORMAT}. Found: {found}")
    names = _load_split_file(images_path)
    labels = _load_split_file(labels_path)
    if names.ndim != 1 or names.dtype.kind not in "USO":
        raise BadFileError(images_path, f"expected a 1-D array of object paths, found {names.dtype} {names.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BadFileError(labels_path, f"expected a 1-D integer array of labels, found {labels.dtype} {labels.shape}")
    if len(labels) != len(names):
        raise BadFileError(labels_path, f"has {len(labels)} labels but {images_path} names {len(names)} objects")
    if len(names) == 0:
        raise BadFileError(images_path, "names no objects")
    ids = []
    for i, name in enumerate(names):
        name = name.decode() if isinstance(name, bytes) else str(name)
        parts = [p for p in name.replace("\\", "/").split("/") if p]
        if len(parts) != 2 or ".." in parts:
            raise BadFileError(images_path, f"entry {i} {name!r} is not of the form /SYNSET/OBJECT/")
        ids.append("/".join(parts))
    return ids, labels.astype(np.int64)


def _list_object(root: str, object_id: str, split_file: str) -> tuple[int, list[tuple[str, str]]]:
    """(V, problems) of one object directory, from its file names only."""
    directory = os.path.join(root, object_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0, [(directory, f"object directory named in {split_file} does not exist")]
    except OSError as err:
        return 0, [(directory, f"cannot list ({err.strerror or err})")]
    images = {int(m.group(1)) for m in map(_IMAGE_RE.fullmatch, names) if m}
    latents = {int(m.group(1)) for m in map(_LATENT_RE.fullmatch, names) if m}
    count = max(images | latents, default=-1) + 1
    problems = []
    for k in range(count):
        if k not in images:
            problems.append((os.path.join(directory, f"image_{k}.jpg"), "missing (views must be numbered 0..V-1)"))
        if k not in latents:
            problems.append((os.path.join(directory, f"latent_{k}.npy"), f"missing (image_{k}.jpg has no latent)"))
    if count < 2 and not problems:
        problems.append((directory, f"has {count} views; a pair needs at least 2 (image_k.jpg + latent_k.npy)"))
    return count, problems


def list_objects(root: str, split: str = "train", check_files: bool = True, skip_bad: bool = False) -> ThreeDIEObjects:
    """Lists and checks the objects of a 3DIEBench split.

    Args:
        root: the dataset root (real 3DIEBench or one our renderer wrote).
        split: "train" or "val".
        check_files: also read every JPEG's header/end and every latent (see the module doc).
        skip_bad: skip objects with a bad file and warn with the count, instead of raising.

    Returns:
        ThreeDIEObjects.

    Raises:
        BadFileError (a ValueError) naming the first bad file, with the count of bad files.
    """
    root = os.path.abspath(os.fspath(root))
    ids, labels = read_split(root, split)
    split_file = f"{split}_images.npy"
    with ThreadPoolExecutor(16) as pool:
        listed = list(pool.map(lambda o: _list_object(root, o, split_file), ids, chunksize=64))
    problems = {i: p for i, (_, p) in enumerate(listed) if p}
    counts = np.array([c for c, _ in listed], np.int32)
    good = [i for i in range(len(ids)) if i not in problems]
    image_size, latent_dtype = None, None
    if check_files:
        files = [
            os.path.join(root, ids[i], f"{kind}_{k}.{ext}")
            for i in good
            for k in range(counts[i])
            for kind, ext in (("image", "jpg"), ("latent", "npy"))
        ]
        results = check_many(
            files, lambda p: check_image_file(p, ("jpeg",)) if p.endswith(".jpg") else check_latent_file(p)
        )
        per_object = [2 * int(counts[i]) for i in good]
        start = 0
        for i, n in zip(good, per_object):
            for path, result in zip(files[start : start + n], results[start : start + n]):
                if isinstance(result, BadFileError):
                    problems.setdefault(i, []).append((result.path, result.reason))
                elif path.endswith(".jpg"):
                    image_size = image_size or tuple(result[1:])
                    if tuple(result[1:]) != image_size:
                        reason = f"size {result[1]}x{result[2]} differs from the dataset's {image_size[0]}x{image_size[1]} (mixed image sizes)"
                        problems.setdefault(i, []).append((path, reason))
                else:
                    latent_dtype = latent_dtype or result
                    if result != latent_dtype:
                        problems.setdefault(i, []).append((path, f"{result} latent among {latent_dtype} latents"))
            start += n
    good = [i for i in range(len(ids)) if i not in problems]
    bad_files = [p for i in sorted(problems) for p in problems[i]]
    if bad_files and not skip_bad:
        path, reason = bad_files[0]
        raise BadFileError(
            path,
            f"{reason} ({len(bad_files)} bad file(s) in {len(problems)} object(s) of split {split!r} of {root}; "
            "pass skip_bad=True, or --config.data.skip_bad=True, to skip those objects)",
        )
    if not good:
        raise BadFileError(
            root, f"split {split!r}: no usable object ({len(bad_files)} bad files); first: {bad_files[0]}"
        )
    if image_size is None or latent_dtype is None:  # check_files=False: read the first object's first view
        first = os.path.join(root, ids[good[0]])
        image_size = tuple(check_image_file(os.path.join(first, "image_0.jpg"), ("jpeg",))[1:])
        latent_dtype = check_latent_file(os.path.join(first, "latent_0.npy"))
    if bad_files:
        warnings.warn(
            f"3DIEBench {root} split {split!r}: skipped {len(bad_files)} bad file(s) by skipping "
            f"{len(problems)} of {len(ids)} objects; first: {bad_files[0][0]}: {bad_files[0][1]}",
            stacklevel=2,
        )
    return ThreeDIEObjects(
        root=root,
        split=split,
        object_ids=tuple(ids[i] for i in good),
        labels=labels[good],
        num_views=counts[good],
        indices=np.array(good, np.int64),
        image_size=image_size,
        latent_dtype=latent_dtype,
        skipped=tuple(bad_files),
    )
