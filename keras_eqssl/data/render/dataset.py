"""Render a whole mini-3DIEBench root (objects, splits, render_info.json), or reuse a cached one."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

from keras_eqssl.data.render import jobs, objects, writer

DEFAULT_PROCEDURAL_OBJECTS = 120


def render_dataset(
    out: str | os.PathLike,
    num_objects: int | None = None,
    views: int = 50,
    size: int = 128,
    seed: int = 0,
    samples: int = 4,
    mesh_dir: str | None = None,
    workers: int = 0,
    skip_bad: bool = False,
    val_fraction: float = 0.2,
    progress: bool = True,
) -> dict:
    """Renders objects into `out` in the 3DIEBench layout and returns the `render_info.json` dict.

    Procedural objects (default `DEFAULT_PROCEDURAL_OBJECTS`) or every mesh of `mesh_dir`
    (`CLASS/...` subfolders); `views` images of `size` px per object. The same arguments give
    byte-identical files. Call it before TensorFlow is imported in the process (TF's LLVM and
    Mesa's llvmpipe clash; `gl` guards the other order too). Raises `MeshError` or
    `GLUnavailableError` with what to fix.

    Example:
    >>> info = render_dataset("/tmp/m3d", num_objects=24, views=4, size=64)  # doctest: +SKIP
    >>> info["num_objects"]                                                 # doctest: +SKIP
    24
    """
    if mesh_dir:
        todo = jobs.mesh_dir_jobs(mesh_dir, num_objects)
        classes = sorted({(j.label, j.synset, j.name) for j in todo})
    else:
        todo = jobs.procedural_jobs(num_objects or DEFAULT_PROCEDURAL_OBJECTS)
        classes = [(k, c.synset, c.name) for k, c in enumerate(objects.CLASSES)]
    settings = jobs.Settings(str(out), views, size, seed, samples)
    report = jobs.render_jobs(todo, settings, workers or jobs.default_workers(), skip_bad, progress=progress)
    root = pathlib.Path(settings.out)
    counts = writer.write_splits(
        root,
        [writer.object_path(j.synset, j.object_id) for j in report.done],
        [j.label for j in report.done],
        seed,
        val_fraction,
    )
    info = {
        "source": mesh_dir or "procedural",
        "seed": seed,
        "views": views,
        "size": size,
        "samples": samples,
        "num_objects": len(report.done),
        "classes": [{"label": k, "synset": s, "name": n} for k, s, n in classes],
        "skipped": [{"file": j.path, "reason": reason} for j, reason in report.skipped],
        "latent": ["rot_x", "rot_y", "rot_z", "floor_hue", "light_theta", "light_phi", "light_hue"],
    }
    writer.write_info(root, info)
    return {**info, "counts": counts, "seconds": report.seconds}


def cached_render(
    cache_dir: str | os.PathLike, num_objects: int, views: int, size: int, seed: int = 0, progress: bool = True
) -> tuple[pathlib.Path, bool]:
    """A procedural mini-3DIEBench under `cache_dir`, rendered only if no complete copy is there.

    The folder name carries the settings (`m3d-{objects}x{views}-{size}px-seed{seed}`); a copy
    counts as complete when its `render_info.json` (written last) matches them. A render goes to
    a folder of its own first and is renamed into place when complete, so processes that start
    at once (several jobs, parallel tests) never read a half-written copy: the first to finish
    wins and the others use its copy.

    Returns:
        (root, rendered): the root folder and whether it was rendered now.
    """
    root = pathlib.Path(os.path.expanduser(str(cache_dir))) / f"m3d-{num_objects}x{views}-{size}px-seed{seed}"
    if _complete(root, num_objects, views, size, seed):
        return root, False
    partial = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    render_dataset(partial, num_objects=num_objects, views=views, size=size, seed=seed, progress=progress)
    if _complete(root, num_objects, views, size, seed):  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
        return root, False
    shutil.rmtree(root, ignore_errors=True)  # an incomplete copy (a render that was killed)
    try:
        os.rename(partial, root)
    except OSError:  # another process renamed its copy in between
        shutil.rmtree(partial, ignore_errors=True)
        if not _complete(root, num_objects, views, size, seed):
            raise
        return root, False
    return root, True


def _complete(root: pathlib.Path, num_objects: int, views: int, size: int, seed: int) -> bool:
    """Whether `root` holds a finished render with these settings (its `render_info.json` says so)."""
    try:
        info = json.loads((root / "render_info.json").read_text())
    except (OSError, ValueError):
        return False
    return (info.get("num_objects"), info.get("views"), info.get("size"), info.get("seed")) == (
        num_objects,
        views,
        size,
        seed,
    )
