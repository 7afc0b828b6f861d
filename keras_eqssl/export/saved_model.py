"""Writing the encoder of a trained model as a plain TensorFlow SavedModel that serves features.

`export_encoder(model, out_dir)` saves the backbone and the invariant/equivariant split behind two
signatures that share one graph: `serving_default` takes float32 images in [0, 1] of any size (and
refuses values outside that range), `serving_uint8` raw uint8 images; `export_checkpoint(path,
out_dir)` does the same for a `.keras` checkpoint, a `checkpoints/` directory or a run's workdir.
Keras is imported only by these two functions (through the model), never by the loader.

`export_lock(out_dir)` is what one export holds while it writes `out_dir`: a second export into
the same directory, from another process or thread, fails at once (`ExportBusyError`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re

import tensorflow as tf

from keras_eqssl.checkpoints import (
    CHECKPOINT_INDEX,
    LockBusyError,
    atomic_directory,
    checkpoint_files,
    file_lock,
    latest_checkpoint,
)
from keras_eqssl.errors import InputError
from keras_eqssl.export.encoder import (
    FORMAT,
    INPUT_KEY,
    INPUT_RANGES,
    METADATA_FILE,
    OUTPUT_KEYS,
    SIGNATURE_KEY,
    UINT8_SIGNATURE_KEY,
)

RESIZE_METHODS = ("bilinear", "bicubic", "area", "nearest", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
FINAL_MODEL = "model.keras"  # what keras-eqssl-train saves in the workdir
# What an export writes into its directory (TensorFlow's SavedModel layout, no assets, and the metadata).
EXPORT_FILES = ("saved_model.pb", "fingerprint.pb", METADATA_FILE)
EXPORT_DIRS = ("variables", "assets")
VARIABLE_FILE = re.compile(r"variables\.(index|data-\d+-of-\d+)")
MAX_LISTED = 8  # entries an error lists before "... and N more"


class ExportDirError(InputError, ValueError):
    """The output directory holds something an export did not write (or is a file); it is left as it is."""


class ExportWriteError(InputError, OSError):
    """The output directory cannot be written (read-only, permission, a file where a directory must be)."""


class ExportBusyError(LockBusyError):
    """Another export (another process or thread) is writing the same output directory."""


def _check_model(model) -> None:
    missing = [
        a for a in ("backbone", "encoder_outputs", "normalize", "image_size", "mean", "std") if not hasattr(model, a)
    ]
    if missing:
        raise TypeError(
            f"export_encoder needs a keras_eqssl model (an SSLModel: PairModel, TeacherStudentModel; with backbone, "
            f"encoder_outputs, normalize, image_size, mean, std); received {type(model).__name__}, which lacks {missing}"
        )


def _jsonable(value):
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def _model_summary(model) -> dict:
    backbone = model.backbone
    objectives = getattr(model, "objectives", None) or []
    invariance = getattr(model, "invariance", None)
    try:
        backbone_config = backbone.get_config()
    except NotImplementedError:  # a backbone without get_config still exports
        backbone_config = {}
    return {
        "name": model.name,
        "class": type(model).__name__,
        "dtype_policy": getattr(getattr(model, "dtype_policy", None), "name", None),
        "backbone": {
            "name": backbone.name,
            "class": type(backbone).__name__,
            "params": int(sum(int(tf.size(w)) for w in backbone.weights)),
            "config": _jsonable(backbone_config),
        },
        "invariance": None if invariance is None else type(invariance).__name__,
        "objectives": [type(o).__name__ for o in objectives],
    }


def _checked_shape(images):
    """`images` after an in-graph check that it is (N, H, W, 3) with H, W >= 1 (N may be 0).

    A loaded signature checks the dtype of its input but not its shape, so the channels are checked
    here. (Not the rank: grappler folds it to the declared 4. Another rank fails in `tf.image.resize`
    or `ensure_shape` with TensorFlow's own message, which names the shape.)
    """
    shape = tf.shape(images)
    ok = tf.logical_and(tf.reduce_all(tf.equal(shape[-1:], 3)), tf.reduce_all(tf.greater_equal(shape[1:3], 1)))
    message = tf.strings.format(
        "keras_eqssl encoder: images must be (N, H, W, 3) with H, W >= 1; received shape {}", [shape]
    )
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return tf.identity(images)


def _checked_range(images):
    """float `images` after an in-graph check that every value is in [0, 1] (NaN fails)."""
    values = tf.reshape(images, [-1])  # reductions over the declared 4 axes would fail first on another rank
    ok = tf.reduce_all(tf.logical_and(values >= 0.0, values <= 1.0))  # False for NaN
    nan = tf.math.is_nan(values)
    low = tf.reduce_min(tf.where(nan, tf.constant(float("inf")), values))
    high = tf.reduce_max(tf.where(nan, tf.constant(float("-inf")), values))
    message = tf.strings.format(
        f"keras_eqssl encoder: {SIGNATURE_KEY} takes float32 images in [0, 1]; received min {{}}, max {{}} "
        f"(of the values that are not NaN) and {{}} NaN values. uint8 pixels: divide by 255, or use the "
        f"{UINT8_SIGNATURE_KEY} signature.",  # no quotes: the error shows them escaped
        [low, high, tf.reduce_sum(tf.cast(nan, tf.int64))],
    )
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return tf.identity(images)


def _serving_functions(model, resize: str | None) -> dict:
    """The two serving `tf.function`s, by signature name; both call one traced `encode`.

    `encode`: float32 [0, 1] `(N, H, W, 3)` -> float32 features; captures only backbone variables.
    `serving_default` checks the [0, 1] range before it; `serving_uint8` scales by 1/255.
    """
    height, width = model.image_size
    size = tf.constant([height, width], tf.int32)

    def to_model_size(x):
        same = tf.reduce_all(tf.equal(tf.shape(x)[1:3], size))
        if resize is None:
            message = f"encoder exported with resize=None takes ({height}, {width}) images only; received (H, W) ="
            check = tf.debugging.Assert(same, [message, tf.shape(x)[1:3]])
            with tf.control_dependencies([check]):
                return tf.identity(x)
        return tf.cond(same, lambda: x, lambda: tf.image.resize(x, [height, width], method=resize, antialias=True))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)], autograph=False)
    def encode(x):
        n = tf.shape(x)[0]
        # N = 0: one blank image through the network, sliced off below (no backbone op sees an empty batch).
        x = tf.cond(n > 0, lambda: x, lambda: tf.zeros([1, height, width, 3]))
        x = tf.ensure_shape(to_model_size(x), [None, height, width, 3])
        outputs = model.encoder_outputs(x, training=False)
        return {k: tf.cast(outputs[k], tf.float32)[:n] for k in OUTPUT_KEYS}

    def serve_float(images):
        return encode(_checked_range(_checked_shape(images)))

    def serve_uint8(images):
        return encode(tf.cast(_checked_shape(images), tf.float32) / 255.0)

    return {
        name: tf.function(fn, input_signature=[tf.TensorSpec([None, None, None, 3], dtype, name=INPUT_KEY)])
        for name, fn, dtype in (
            (SIGNATURE_KEY, serve_float, tf.float32),
            (UINT8_SIGNATURE_KEY, serve_uint8, tf.uint8),
        )
    }


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _foreign_entries(out: pathlib.Path) -> list[str]:
    """The entries of the directory `out` that no export wrote (all of them if it holds no export)."""
    names = sorted(p.name for p in out.iterdir())
    if "saved_model.pb" not in names:
        return names
    foreign = [n for n in names if not ((out / n).is_file() and n in EXPORT_FILES or n in EXPORT_DIRS)]
    for name in EXPORT_DIRS:
        folder = out / name
        if folder.is_dir():
            foreign += [
                f"{name}/{p.name}"
                for p in sorted(folder.iterdir())
                if not (name == "variables" and p.is_file() and VARIABLE_FILE.fullmatch(p.name))
            ]
        elif folder.exists():
            foreign.append(name)
    return foreign


def check_export_dir(out_dir: str | os.PathLike) -> bool:
    """Whether `out_dir` holds an earlier export, which an export would replace (False: new or empty).

    Raises `ExportDirError` if it is a file or holds anything an export did not write (listed in
    the message), `ExportWriteError` if it cannot be read. `export_encoder` checks this itself;
    call it to fail before loading a model.
    """
    out = pathlib.Path(out_dir)
    with _writing(out):
        return _check_out_dir(out)


def _check_out_dir(out: pathlib.Path) -> bool:
    """`check_export_dir` without turning an `OSError` into `ExportWriteError`."""
    if out.exists() and not out.is_dir():
        raise ExportDirError(f"export_encoder: {out} exists and is not a directory; choose another output directory")
    if not out.is_dir():
        return False
    foreign = _foreign_entries(out)
    if foreign and not (out / "saved_model.pb").exists():
        raise ExportDirError(
            f"export_encoder: {out} is a non-empty directory that holds no earlier export (no saved_model.pb; "
            f"it holds {_listing(foreign)}); refusing to overwrite it. Remove them or choose another output "
            "directory (a new or empty one)."
        )
    if foreign:
        raise ExportDirError(
            f"export_encoder: {out} holds an earlier export and also {_listing(foreign)}, which no export wrote; "
            "refusing to replace it (they would be deleted). Remove them or choose another output directory."
        )
    return (out / "saved_model.pb").exists()


def _file_in_the_way(path: pathlib.Path) -> pathlib.Path | None:
    """The first existing ancestor of `path` (or `path`'s parent) that is not a directory, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


@contextlib.contextmanager
def _writing(out: pathlib.Path):
    """Turns an `OSError` raised inside into an `ExportWriteError` that names `out` and the cause."""
    try:
        yield
    except InputError:
        raise
    except OSError as err:
        blocker = _file_in_the_way(out)
        if blocker is not None:
            why = f"{blocker} is a file, not a directory"
        else:
            why = f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
        raise ExportWriteError(
            f"export_encoder: cannot write {out}: {why}. Choose an output directory you can write to."
        ) from err


@contextlib.contextmanager
def export_lock(out_dir: str | os.PathLike):
    """Holds the lock on the export directory `out_dir` for the block (`.NAME.lock` beside it,
    `keras_eqssl.checkpoints.file_lock`).

    Another process or thread that asks for it meanwhile gets `ExportBusyError` ("another export
    is writing DIR") at once; the same thread may nest it (`export_encoder` takes it inside the
    block). The parent directory is created. A `gs://`-style path is not locked.
    """
    path = os.fspath(out_dir)
    if "://" in path:
        yield
        return
    out = pathlib.Path(os.path.abspath(path))  # one lock file however the path is spelled
    with contextlib.ExitStack() as held:
        with _writing(out):  # taking the lock: an OSError names `out`; the block's own errors stay as they are
            held.enter_context(
                file_lock(
                    out.with_name(f".{out.name}.lock"),
                    busy=f"export_encoder: another export is writing {out}",
                    advice="wait for it to finish, or choose another output directory",
                    error=ExportBusyError,
                )
            )
        yield


def export_encoder(
    model,
    out_dir: str | os.PathLike,
    *,
    resize: str | None = "bilinear",
    metadata: dict | None = None,
) -> str:
    """Writes the encoder of `model` (backbone + split, no heads) as a TensorFlow SavedModel.

    The SavedModel has two signatures (format `keras_eqssl.encoder/2`, docs/serving.md):

    - `serving_default`: `images` float32 `(N, H, W, 3)` with values in [0, 1] (TF-Hub's
      convention). A value outside [0, 1], or NaN, raises `InvalidArgumentError` naming the
      range received, so uint8 pixels that NumPy casts to float (0..255) fail instead of
      serving wrong features.
    - `serving_uint8`: `images` uint8 `(N, H, W, 3)` in [0, 255], scaled by 1/255.

    Both take any batch size (N = 0 gives `(0, C)` outputs) and any H, W >= 1 (else
    `InvalidArgumentError`), and do inside: resize to `model.image_size` when the size differs
    (`resize` method with antialiasing; the aspect ratio is not kept), the model's mean/std
    normalisation, the backbone in inference mode (BatchNorm moving statistics) and the
    invariant/equivariant split. They return float32
    `{"embedding": (N, C), "invariant": (N, d_inv), "equivariant": (N, d_equi)}` (both parts are
    the embedding when the model has no split), also for a mixed-precision model.

    Only the backbone's variables are saved: no projector, predictor, decoder, parameter heads or
    EMA target network. `tf.saved_model.load(out_dir)` in a process that never imports Keras or
    keras_eqssl, and TensorFlow Serving (with `out_dir` as a numbered version directory, e.g.
    `serving/eqssl/1`), use it as is. The same metadata as `out_dir/keras_eqssl_export.json`
    (image size, split, feature dim, mean, std, resize, model summary, versions) is returned as a
    JSON string by the SavedModel's `metadata()` function.

    The export is written to a temporary directory next to `out_dir` and moved into place, so a
    crash never leaves half an export. `out_dir` may be new, empty, or an earlier export (only
    `saved_model.pb`, `fingerprint.pb`, `variables/`, an empty `assets/` and the metadata file),
    which is replaced ("replaced the earlier export in DIR" is printed). A directory holding
    anything else is left as it is: `ExportDirError` lists what no export wrote. While it writes,
    the export holds `export_lock(out_dir)`: a second export into the same directory fails with
    `ExportBusyError` instead of mixing the two.

    Args:
        model: a `keras_eqssl.methods.SSLModel` (`PairModel`, `TeacherStudentModel`; built, e.g. trained or loaded).
        out_dir: the directory to write (created; its parent too).
        resize: a `tf.image.resize` method (`"bilinear"`, `"bicubic"`, `"area"`, ...), or None to
            accept only images of `model.image_size` (other sizes fail at call time).
        metadata: extra JSON-able entries for the metadata (e.g. `{"checkpoint": path}`).

    Returns:
        `out_dir` as a string.

    Raises:
        ExportDirError: `out_dir` is a file, or a directory holding what no export wrote (a `ValueError`).
        ExportWriteError: `out_dir` cannot be written: read-only, no permission, a file on its path (an `OSError`).
        ExportBusyError: another export is writing `out_dir` now.

    Example:

    ```python
    import tensorflow as tf
    from keras_eqssl.export import export_encoder, load_encoder
    from keras_eqssl.methods import PairModel, VICReg
    from keras_eqssl.nn import backbone_from_name

    model = PairModel(  # in practice: trained, or keras.models.load_model("runs/x/model.keras")
        backbone_from_name("resnet18", stem="cifar", width=0.125), VICReg(projector_units=[64, 64]),
        split=(32, 32), image_size=32,
    )
    export_encoder(model, "/tmp/encoder")
    signatures = tf.saved_model.load("/tmp/encoder").signatures  # TensorFlow only
    signatures["serving_default"](images=tf.zeros((2, 200, 150, 3)))["invariant"].shape  # (2, 32); [0, 1] floats
    signatures["serving_uint8"](images=tf.zeros((2, 200, 150, 3), tf.uint8))["invariant"].shape  # (2, 32)
    load_encoder("/tmp/encoder").metadata["split"]  # [32, 32]
    ```
    """
    _check_model(model)
    if resize is not None and resize not in RESIZE_METHODS:
        raise ValueError(f"export_encoder: resize must be one of {RESIZE_METHODS} or None; received {resize!r}")
    out_path = os.fspath(out_dir)
    if "://" in out_path:  # gs:// and friends: no lock, no atomic move, written in place
        module, signatures, text = _export_module(model, resize, metadata)
        tf.saved_model.save(module, out_path, signatures=signatures)
        with tf.io.gfile.GFile(f"{out_path.rstrip('/')}/{METADATA_FILE}", "w") as f:
            f.write(text)
        return out_path
    out = pathlib.Path(out_path)
    with export_lock(out):
        replaces = check_export_dir(out)  # before the work: a refused directory costs nothing
        module, signatures, text = _export_module(model, resize, metadata)
        with _writing(out), atomic_directory(out) as tmp:  # replaces `out` when the block ends
            tf.saved_model.save(module, str(tmp), signatures=signatures)
            (tmp / METADATA_FILE).write_text(text)
            _check_out_dir(out)  # still nothing foreign in it
    if replaces:
        print(f"replaced the earlier export in {out}", flush=True)
    return out_path


def _export_module(model, resize: str | None, metadata: dict | None) -> tuple[tf.Module, dict, str]:
    """(the `tf.Module` to save, its signatures by name, the metadata JSON text) for `export_encoder`."""
    import keras_eqssl

    functions = _serving_functions(model, resize)
    signatures = {name: fn.get_concrete_function() for name, fn in functions.items()}
    variables, seen = [], set()
    for concrete in signatures.values():  # trainable first, each variable once
        for v in [*concrete.trainable_variables, *concrete.variables]:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    backbone_ids = set()
    for w in model.backbone.weights:
        value = getattr(w, "value", w)
        # Under a strategy the function may capture a distributed variable's per-device copies.
        backbone_ids.update(id(v) for v in (value, *getattr(value, "values", ())))
    strays = [v.name for v in variables if id(v) not in backbone_ids]
    if strays:
        raise ValueError(f"export_encoder: the serving function reads variables outside the backbone: {strays}")

    outputs = signatures[SIGNATURE_KEY].structured_outputs
    dims = {k: int(outputs[k].shape[-1]) for k in OUTPUT_KEYS}
    split = getattr(model, "split", None)
    info = {
        "format": FORMAT,
        "keras_eqssl_version": keras_eqssl.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": _keras_version(),
        "signature": {
            name: {
                "inputs": {
                    INPUT_KEY: {"dtype": dtype, "shape": [None, None, None, 3], "range": list(INPUT_RANGES[dtype])}
                },
                "outputs": {k: {"dtype": "float32", "shape": [None, d]} for k, d in dims.items()},
            }
            for name, dtype in ((SIGNATURE_KEY, "float32"), (UINT8_SIGNATURE_KEY, "uint8"))
        },
        "image_size": [int(s) for s in model.image_size],
        "resize": resize,
        "antialias": resize is not None,
        "split": None if split is None else [int(s) for s in split],
        "feature_dim": dims["embedding"],
        "invariant_dim": dims["invariant"],
        "equivariant_dim": dims["equivariant"],
        "mean": [float(m) for m in model.mean],
        "std": [float(s) for s in model.std],
        "model": _model_summary(model),
        "num_variables": len(variables),
        **_jsonable(metadata or {}),
    }
    text = json.dumps(info, indent=2) + "\n"

    module = tf.Module(name="keras_eqssl_encoder")
    module.encoder_variables = variables  # tracked: exactly what the signatures read
    module.serving = list(functions.values())
    module.metadata = tf.function(lambda: tf.constant(text), input_signature=[])
    return module, signatures, text


def _keras_version() -> str | None:
    try:
        import keras

        return keras.__version__
    except ImportError:  # pragma: no cover
        return None


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """The `.keras` file that `path` stands for.

    `path` may be a `.keras` file; a checkpoint directory with `checkpoint.json` (its newest
    checkpoint); or a training workdir (its final `model.keras`, else the newest checkpoint in
    its `checkpoints/`). Errors name the path and what was looked for.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"export: checkpoint {path} does not exist")
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"export: {path} is not a .keras model file")
        return str(path)
    if (path / "saved_model.pb").exists():
        raise ValueError(f"export: {path} is already a SavedModel; load it with keras_eqssl.export.load_encoder")
    if (path / CHECKPOINT_INDEX).exists() or checkpoint_files(path):
        return _latest(path)
    if (path / FINAL_MODEL).exists():
        return str(path / FINAL_MODEL)
    if (path / "checkpoints" / CHECKPOINT_INDEX).exists() or checkpoint_files(path / "checkpoints"):
        return _latest(path / "checkpoints")
    raise FileNotFoundError(
        f"export: {path} is a directory without a model: looked for {path / FINAL_MODEL}, "
        f"{path / CHECKPOINT_INDEX} and {path / 'checkpoints' / CHECKPOINT_INDEX}"
    )


def _latest(directory: pathlib.Path) -> str:
    return latest_checkpoint(directory)["path"]


def load_model(path: str | os.PathLike):
    """Loads the model that `path` stands for (see `resolve_checkpoint`), without its optimizer.

    `keras.models.load_model(file, compile=False)` with keras_eqssl's classes registered, after a
    check that the archive is intact (a damaged one is named, with the intact earlier checkpoint
    offered); any keras_eqssl model (`SSLModel`: `PairModel`, `TeacherStudentModel`, ...) loads, anything
    else is a `ValueError` naming the file.
    """
    file = resolve_checkpoint(path)
    import keras

    import keras_eqssl.methods  # noqa: F401  (registers the classes load_model needs)
    from keras_eqssl.checkpoints import check_archive

    check_archive(file)  # a damaged file: named, with the intact earlier checkpoint offered
    try:
        model = keras.models.load_model(file, compile=False)
    except Exception as err:
        raise ValueError(f"export: could not load {file}: {type(err).__name__}: {err}") from err
    try:
        _check_model(model)
    except TypeError as err:
        raise ValueError(f"export: {file} holds a {type(model).__name__}, not a keras_eqssl model (SSLModel)") from err
    return model


def export_checkpoint(
    checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike, *, resize: str | None = "bilinear"
) -> str:
    """Loads a `.keras` model checkpoint and exports its encoder (`export_encoder`).

    Args:
        checkpoint_path: a `.keras` file, a `checkpoints/` directory (its newest checkpoint) or a
            workdir of `keras-eqssl-train` (its `model.keras`, else its newest checkpoint).
        out_dir: where the SavedModel goes.
        resize: as in `export_encoder`.

    Returns:
        `out_dir` as a string. The metadata records the checkpoint file under `"checkpoint"`.

    Example:

    ```python
    from keras_eqssl.export import export_checkpoint, load_encoder

    export_checkpoint("runs/vicreg_recon", "exports/vicreg_recon")  # the run's model.keras
    encoder = load_encoder("exports/vicreg_recon")
    ```
    """
    file = resolve_checkpoint(checkpoint_path)
    model = load_model(file)
    return export_encoder(model, out_dir, resize=resize, metadata={"checkpoint": os.path.abspath(file)})
