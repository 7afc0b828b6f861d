"""Checks on encoded image and `.npy` files that name the file: eager (at construction) and in-graph.

TensorFlow's own decode errors do not say which file failed, so the readers check cheaply first:

- eagerly, `check_image_file(path)` reads a file's first bytes and its last two (no decode) and
  returns its format and size (JPEG, PNG, GIF, BMP headers), raising `BadFileError` naming the file;
- in the graph, `decode_jpeg_checked` / `decode_image_checked` assert the same markers and the
  decoded size with the path in the `InvalidArgumentError` message, then decode.

A JPEG whose markers are intact but whose entropy-coded data is damaged passes both checks and
fails in `tf.io.decode_jpeg` with TensorFlow's message (which does not name the file).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf

from keras_eqssl.errors import InputError

JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GIF_MAGICS = (b"GIF87a", b"GIF89a")
BMP_MAGIC = b"BM"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_HEAD = 1 << 16  # JPEG start-of-frame usually sits in the first few KB (after EXIF / tables)


class BadFileError(InputError, ValueError):
    """A data file that cannot be used; `path` names it and the message says why."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def _jpeg_size(head: bytes, path: str) -> tuple[int, int]:
    """(height, width) from the first start-of-frame segment of a JPEG's leading bytes."""
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            raise BadFileError(path, f"corrupt JPEG: no segment marker at byte {pos}")
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(head):
                break
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return height, width
        if marker == 0xDA:  # start of scan before any frame header
            raise BadFileError(path, "corrupt JPEG: image data before a frame header")
        pos += 2 + length
    raise BadFileError(path, f"corrupt JPEG: no frame header in the first {len(head)} bytes")


def check_image_file(path: str, formats: tuple[str, ...] = ("jpeg", "png", "gif", "bmp")) -> tuple[str, int, int]:
    """Checks an image file's header (and a JPEG's or PNG's end) without decoding it.

    Args:
        path: the image file.
        formats: the formats accepted.

    Returns:
        `(format, height, width)`, format one of "jpeg", "png", "gif", "bmp".

    Raises:
        BadFileError naming `path`: missing, empty, truncated, or not an accepted format.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
            size = os.fstat(f.fileno()).st_size
            if size > len(head):
                f.seek(size - 12)
                tail = f.read(12)
            else:
                tail = head[-12:]
    except OSError as err:
        raise BadFileError(path, f"cannot read ({err.strerror or err})") from err
    if size == 0:
        raise BadFileError(path, "empty file")
    if head.startswith(JPEG_SOI):
        fmt = "jpeg"
        if not tail.endswith(JPEG_EOI):
            raise BadFileError(path, "truncated or corrupt JPEG: it does not end with the end-of-image marker FFD9")
        height, width = _jpeg_size(head, path)
    elif head.startswith(PNG_MAGIC):
        fmt = "png"
        if tail[-8:-4] != b"IEND":
            raise BadFileError(path, "truncated or corrupt PNG: it does not end with an IEND chunk")
        if len(head) < 24:
            raise BadFileError(path, "truncated PNG header")
        width, height = struct.unpack(">II", head[16:24])
    elif head[:6] in GIF_MAGICS and len(head) >= 10:
        fmt = "gif"
        width, height = struct.unpack("<HH", head[6:10])
    elif head.startswith(BMP_MAGIC) and len(head) >= 26:
        fmt = "bmp"
        width, height = struct.unpack("<ii", head[18:26])
        height = abs(height)
    else:
        raise BadFileError(path, f"not an image of a known format (first bytes {head[:8]!r})")
    if fmt not in formats:
        raise BadFileError(path, f"is a {fmt.upper()} file; expected {' or '.join(f.upper() for f in formats)}")
    return fmt, height, width


DECODER_COMPLAINTS = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid JPEG", "Invalid PNG", "CRC error")


def decode_check_many(paths: Iterable[str], progress: bool = False) -> list:
    """Decodes each file once with TensorFlow's decoders (the training pipeline's), one at a time,
    and returns `None` or a `BadFileError` per path, in order.

    A damaged file either fails to decode (TensorFlow's error does not name it; this does) or,
    worse, decodes into garbage while libjpeg only prints "Corrupt JPEG data: ..." on the
    process's stderr. To tell which file that was, the C-level stderr (file descriptor 2) is sent
    to a temporary file during each decode and read back. Sequential, and as slow as one epoch
    of decoding: it is the opt-in `check_decode` of the image-folder source.
    """
    import sys
    import tempfile

    paths = list(paths)
    results = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="decoding every image once", unit="img")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            for path in paths:
                start = log.seek(0, os.SEEK_END)
                try:
                    tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
                except tf.errors.OpError as err:
                    results.append(BadFileError(path, f"does not decode ({' '.join(err.message.split())[:200]})"))
                else:
                    log.seek(start)
                    said = log.read().decode("utf-8", "replace")
                    found = [line for line in said.splitlines() if any(c in line for c in DECODER_COMPLAINTS)]
                    results.append(
                        BadFileError(path, f"damaged: the decoder reports {found[0].strip()!r}") if found else None
                    )
                if bar is not None:
                    bar.update(1)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if bar is not None:
                bar.close()
    return results


def check_many(paths: Iterable[str], check: Callable[[str], object], threads: int = 16) -> list:
    """`check(path)` for each path in a thread pool; returns one result or `BadFileError` per path, in order."""

    def run(path):
        try:
            return check(path)
        except BadFileError as err:
            return err

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, paths, chunksize=64))


def _assert(ok: tf.Tensor, message: str, path: tf.Tensor) -> tf.Operation:
    return tf.debugging.Assert(ok, [tf.constant(message), path], summarize=1)


def decode_jpeg_checked(contents: tf.Tensor, path: tf.Tensor, size: tuple[int, int] | None = None) -> tf.Tensor:
    """Decodes a JPEG in the graph after checking its markers (and its size), naming `path` if not.

    Args:
        contents: scalar string, the file's bytes.
        path: scalar string, the file's name for the error message.
        size: expected `(height, width)`, or None for any.

    Returns:
        (H, W, 3) uint8, decoded with libjpeg's accurate integer DCT (PIL's and torchvision's; TensorFlow's
        default fast DCT differs from them by up to 8 levels on most pixels).

    Raises (at run time):
        InvalidArgumentError "corrupt or truncated JPEG ... [path]" or "... has size ... [path]".
    """
    n = tf.strings.length(contents)
    ok = tf.logical_and(
        tf.equal(tf.strings.substr(contents, 0, 2), JPEG_SOI),
        tf.equal(tf.strings.substr(contents, tf.maximum(n - 2, 0), 2), JPEG_EOI),
    )
    with tf.control_dependencies([_assert(ok, "corrupt or truncated JPEG (no FFD8 start / FFD9 end marker):", path)]):
        image = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
    if size is None:
        return image
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(size, tf.int32)))
    message = f"image size differs from the dataset's {size[0]}x{size[1]} (mixed image sizes):"
    with tf.control_dependencies([_assert(same, message, path)]):
        image = tf.identity(image)
    return tf.ensure_shape(image, (size[0], size[1], 3))


def decode_image_checked(contents: tf.Tensor, path: tf.Tensor) -> tf.Tensor:
    """Decodes a JPEG, PNG, GIF (first frame) or BMP to (H, W, 3) uint8, naming `path` if it is none of them."""
    head = tf.strings.substr(contents, 0, 8)
    ok = tf.reduce_any(
        tf.stack(
            [
                tf.equal(tf.strings.substr(head, 0, 2), JPEG_SOI),
                tf.equal(head, PNG_MAGIC),
                tf.equal(tf.strings.substr(head, 0, 3), b"GIF"),
                tf.equal(tf.strings.substr(head, 0, 2), BMP_MAGIC),
            ]
        )
    )
    with tf.control_dependencies([_assert(ok, "not a JPEG, PNG, GIF or BMP image:", path)]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def square_resize(image: tf.Tensor, size: int | None) -> tf.Tensor:
    """Centre-crops (H, W, C) to a square and resizes it to (size, size, C) uint8 (antialiased).

    `size=None` returns the image unchanged.
    """
    if size is None:
        return image
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    square = image[top : top + side, left : left + side]
    resized = tf.image.resize(square, (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
