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

DEFAULT_PROCEDURAL_OBJECTS = 120


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from keras_eqssl.data.render import jobs, objects, sheet, writer
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
        if _MESH_DIR.value:
            todo = jobs.mesh_dir_jobs(_MESH_DIR.value, _NUM_OBJECTS.value)
            classes = sorted({(j.label, j.synset, j.name) for j in todo})
        else:
            todo = jobs.procedural_jobs(_NUM_OBJECTS.value or DEFAULT_PROCEDURAL_OBJECTS)
            classes = [(k, c.synset, c.name) for k, c in enumerate(objects.CLASSES)]
        settings = jobs.Settings(_OUT.value, _VIEWS.value, _SIZE.value, _SEED.value, _SAMPLES.value)
        workers = _WORKERS.value or jobs.default_workers()
        print(
            f"rendering {len(todo)} objects x {_VIEWS.value} views at {_SIZE.value} px into {_OUT.value} ({workers} workers)"
        )
        report = jobs.render_jobs(todo, settings, workers, _SKIP_BAD.value, progress=not _QUIET.value)
    except (MeshError, GLUnavailableError) as err:
        _fail(str(err))

    root = settings.out
    import pathlib

    counts = writer.write_splits(
        pathlib.Path(root),
        [writer.object_path(j.synset, j.object_id) for j in report.done],
        [j.label for j in report.done],
        _SEED.value,
        _VAL_FRACTION.value,
    )
    info = {
        "source": _MESH_DIR.value or "procedural",
        "seed": _SEED.value,
        "views": _VIEWS.value,
        "size": _SIZE.value,
        "samples": _SAMPLES.value,
        "num_objects": len(report.done),
        "classes": [{"label": k, "synset": s, "name": n} for k, s, n in classes],
        "skipped": [{"file": j.path, "reason": reason} for j, reason in report.skipped],
        "latent": ["rot_x", "rot_y", "rot_z", "floor_hue", "light_theta", "light_phi", "light_hue"],
    }
    writer.write_info(pathlib.Path(root), info)
    images = len(report.done) * _VIEWS.value
    print(
        f"wrote {images} images of {len(report.done)} objects in {report.seconds:.1f} s "
        f"({images / max(report.seconds, 1e-9):.0f} images/s); train {counts['train']} / val {counts['val']} objects"
    )
    if report.skipped:
        print(
            f"warning: skipped {len(report.skipped)} mesh files that could not be read (see render_info.json)",
            file=sys.stderr,
        )
    if _SHEET.value:
        print(f"wrote {sheet.contact_sheet(root, _SHEET.value)}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
