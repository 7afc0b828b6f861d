"""Renders a mini-3DIEBench: objects in the 3DIEBench scene, written in 3DIEBench's on-disk format.

keras-eqssl-render --out=data/m3d --num_objects=200 --views=50 --size=128 --sheet=m3d.png
keras-eqssl-render --out=data/modelnet --mesh_dir=ModelNet10 --skip_bad     # CLASS/train|test/*.off
keras-eqssl-render --out=data/m3d --sheet=m3d.png --sheet_only              # a sheet of an existing root

Writes OUT/SYNSET/OBJECT_ID/image_K.jpg + latent_K.npy (7 float32: rotation as extrinsic "xyz"
Euler angles, floor hue, spot-light theta, phi, hue), train/val_images.npy + _labels.npy (split
by object, stratified per class) and render_info.json. The same flags give byte-identical files.
Procedural classes and their synsets: keras_eqssl/data/render/objects.py.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_eqssl.cli._config import parse_flags  # noqa: E402

_OUT = flags.DEFINE_string("out", None, "Root folder to write (created if missing).", required=True)
_NUM_OBJECTS = flags.DEFINE_integer(
    "num_objects", None, "Objects to render (default: 120 procedural, or every mesh of --mesh_dir).", lower_bound=1
)
_VIEWS = flags.DEFINE_integer("views", 50, "Views (images) per object.", lower_bound=1)
_SIZE = flags.DEFINE_integer("size", 128, "Image side in pixels.", lower_bound=8, upper_bound=4096)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the objects' shapes, colours and latents.")
_MESH_DIR = flags.DEFINE_string(
    "mesh_dir", None, "Render mesh files (obj/off/ply/stl) from CLASS/... subfolders instead of procedural objects."
)
_WORKERS = flags.DEFINE_integer("workers", 0, "Processes (one GL context each); 0 = all cores.", lower_bound=0)
_SKIP_BAD = flags.DEFINE_bool("skip_bad", False, "Warn about and skip mesh files that cannot be read.")
_SHEET = flags.DEFINE_string("sheet", None, "Also write a contact sheet PNG of the root here.")
_SHEET_ONLY = flags.DEFINE_bool("sheet_only", False, "Render nothing; draw --sheet of an existing --out root.")
_VAL_FRACTION = flags.DEFINE_float("val_fraction", 0.2, "Fraction of each class's objects in val.", 0.0, 1.0)
_SAMPLES = flags.DEFINE_integer("samples", 4, "MSAA samples per pixel (1 = no anti-aliasing).", lower_bound=1)
_QUIET = flags.DEFINE_bool("quiet", False, "No progress bar.")


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from keras_eqssl.data.render import jobs, sheet
    from keras_eqssl.data.render.dataset import DEFAULT_PROCEDURAL_OBJECTS, render_dataset
    from keras_eqssl.data.render.gl import GLUnavailableError
    from keras_eqssl.data.render.meshes import MeshError

    if _SHEET_ONLY.value:
        if not _SHEET.value:
            raise app.UsageError("--sheet_only needs --sheet=PATH.png")
        try:
            print(f"wrote {sheet.contact_sheet(_OUT.value, _SHEET.value)}")
        except FileNotFoundError as err:
            _fail(str(err))
        return

    try:
        workers = _WORKERS.value or jobs.default_workers()
        print(
            f"rendering {_NUM_OBJECTS.value or ('all meshes' if _MESH_DIR.value else DEFAULT_PROCEDURAL_OBJECTS)} objects "
            f"x {_VIEWS.value} views at {_SIZE.value} px into {_OUT.value} ({workers} workers)"
        )
        info = render_dataset(
            _OUT.value,
            num_objects=_NUM_OBJECTS.value,
            views=_VIEWS.value,
            size=_SIZE.value,
            seed=_SEED.value,
            samples=_SAMPLES.value,
            mesh_dir=_MESH_DIR.value,
            workers=workers,
            skip_bad=_SKIP_BAD.value,
            val_fraction=_VAL_FRACTION.value,
            progress=not _QUIET.value,
        )
    except (MeshError, GLUnavailableError) as err:
        _fail(str(err))

    root, counts = _OUT.value, info["counts"]
    images = info["num_objects"] * _VIEWS.value
    print(
        f"wrote {images} images of {info['num_objects']} objects in {info['seconds']:.1f} s "
        f"({images / max(info['seconds'], 1e-9):.0f} images/s); train {counts['train']} / val {counts['val']} objects"
    )
    if info["skipped"]:
        print(
            f"warning: skipped {len(info['skipped'])} mesh files that could not be read (see render_info.json)",
            file=sys.stderr,
        )
    if _SHEET.value:
        print(f"wrote {sheet.contact_sheet(root, _SHEET.value)}")


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
