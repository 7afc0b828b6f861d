"""Which objects to render, and rendering them over all cores (one GL context per process).

A `Job` is one object: procedural (`path is None`, built from (seed, index)) or a mesh file.
`render_jobs` renders every view of each job with the mesh uploaded once, writes them with
`writer`, and returns which objects were written and which were skipped. Each object's
latents come from `np.random.default_rng([seed, index, 1])`, so the output depends only on the
seed and the job list, not on the number of workers or the order they finish in.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pathlib
import sys
import time
import warnings

import numpy as np

from keras_eqssl.data.render import meshes, objects, scene, writer


@dataclasses.dataclass(frozen=True)
class Job:
    """One object to render: `index` seeds it; `path` is its mesh file (None: procedural)."""

    index: int
    synset: str
    object_id: str
    label: int
    name: str
    path: str | None = None


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to render: output root, views per object, image side, seed, MSAA samples, JPEG quality."""

    out: str
    views: int = 50
    size: int = 128
    seed: int = 0
    samples: int = 4
    quality: int = writer.JPEG_QUALITY


@dataclasses.dataclass
class Report:
    """What `render_jobs` did: the jobs written (by index), those skipped with the reason, and the time."""

    done: list[Job]
    skipped: list[tuple[Job, str]]
    seconds: float


def procedural_jobs(num_objects: int) -> list[Job]:
    """Jobs for procedural objects 0 .. num_objects-1 (classes in turn, see `objects`)."""
    jobs = []
    for i in range(num_objects):
        label, cls = objects.class_of(i)
        jobs.append(Job(i, cls.synset, objects.object_id(i), label, cls.name))
    return jobs


def mesh_dir_jobs(mesh_dir: str | pathlib.Path, num_objects: int | None = None) -> list[Job]:
    """Jobs for the meshes of `mesh_dir` (see `meshes.find_meshes`), classes interleaved, at most `num_objects`."""
    found = meshes.find_meshes(mesh_dir)
    by_class: dict[int, list[meshes.MeshFile]] = {}
    for m in found:
        by_class.setdefault(m.label, []).append(m)
    order = []
    for rank in range(max(len(v) for v in by_class.values())):
        order += [files[rank] for _, files in sorted(by_class.items()) if rank < len(files)]
    order = order[:num_objects] if num_objects else order
    return [Job(i, m.synset, m.object_id, m.label, m.synset, str(m.path)) for i, m in enumerate(order)]


def object_mesh(job: Job, seed: int):
    """(trimesh, (F, 3) face colours) of a job; raises `meshes.MeshError` naming a bad file."""
    if job.path is None:
        return objects.procedural_object(seed, job.index)
    mesh = meshes.load_mesh(job.path)
    return mesh, mesh.visual.face_colors[:, :3] / 255.0


# --- one process ---------------------------------------------------------------------------------
_RENDERER = None
_SETTINGS: Settings | None = None


def _renderer(settings: Settings):
    global _RENDERER
    from keras_eqssl.data.render.gl import Renderer

    if _RENDERER is None or (_RENDERER.size, _RENDERER.samples) != (settings.size, settings.samples):
        _release_renderer()
        _RENDERER = Renderer(settings.size, samples=settings.samples)
    return _RENDERER


def _release_renderer():
    global _RENDERER
    if _RENDERER is not None:
        _RENDERER.release()
        _RENDERER = None


def render_job(job: Job, settings: Settings, skip_bad: bool = False) -> tuple[Job, str | None]:
    """Renders and writes all views of one object; returns (job, None) or (job, reason skipped).

    Raises:
        meshes.MeshError: a bad mesh file (unless `skip_bad`).
        gl.GLUnavailableError: no GL context.
    """
    try:
        mesh, colors = object_mesh(job, settings.seed)
        data = meshes.vertex_data(mesh, colors)
    except (meshes.MeshError, ValueError) as err:
        if not isinstance(err, meshes.MeshError):
            err = meshes.MeshError(f"cannot render mesh file {job.path}: {err}")
        if skip_bad:
            return job, str(err)
        raise err from None
    latents = scene.sample_latents(np.random.default_rng([settings.seed, job.index, 1]), settings.views)
    obj_dir = pathlib.Path(settings.out) / job.synset / job.object_id
    render_views(_renderer(settings), data, latents, obj_dir, settings.quality)
    return job, None


def render_views(renderer, data: np.ndarray, latents: np.ndarray, obj_dir: pathlib.Path, quality: int = 95) -> None:
    """Uploads one object's (3F, 9) rows once and writes a view per (V, 7) latent into `obj_dir`."""
    renderer.set_mesh(data)
    obj_dir = pathlib.Path(obj_dir)
    obj_dir.mkdir(parents=True, exist_ok=True)
    for k, latent in enumerate(np.asarray(latents, np.float32)):
        writer.write_view(obj_dir, k, renderer.render(latent), latent, quality)


def _init_worker(settings: Settings, skip_bad: bool, stop):
    global _SETTINGS, _SKIP_BAD, _STOP
    from keras_eqssl.data.render.gl import configure_llvmpipe

    configure_llvmpipe(1)  # parallelism is one process per core
    _SETTINGS, _SKIP_BAD, _STOP = settings, skip_bad, stop


_SKIP_BAD = False
_STOP = None
_CANCELLED = "cancelled after an earlier error"


def _work(job: Job):
    """Renders one job in a worker; an error comes back as a value (the parent raises it).

    Returning errors instead of raising lets the pool drain normally: once one job fails the
    parent sets `_STOP` and the remaining jobs return at once, so the pool is never terminated
    while a worker is in the middle of rendering (terminating busy workers could hang).
    """
    if _STOP is not None and _STOP.is_set():
        return job, _CANCELLED, None
    try:
        job, reason = render_job(job, _SETTINGS, _SKIP_BAD)
    except Exception as err:  # noqa: BLE001 - re-raised in the parent
        return job, None, err
    return job, reason, None


# --- all of them ---------------------------------------------------------------------------------
def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def render_jobs(
    jobs: list[Job], settings: Settings, workers: int = 0, skip_bad: bool = False, progress: bool = True
) -> Report:
    """Renders `jobs` with `workers` processes (0: all cores; 1: in this process).

    Processes are forked (one GL context each, made in the child); a bad mesh or a missing GL
    stack stops the run with the worker's error unless `skip_bad` (bad meshes only).
    """
    from tqdm.auto import tqdm

    workers = min(workers or default_workers(), max(len(jobs), 1))
    pathlib.Path(settings.out).mkdir(parents=True, exist_ok=True)
    done, skipped = [], []
    start = time.perf_counter()
    bar = tqdm(total=len(jobs) * settings.views, unit="img", disable=not progress, smoothing=0.05)

    def collect(result):
        job, reason = result
        if reason is None:
            done.append(job)
        else:
            skipped.append((job, reason))
            warnings.warn(f"skipped: {reason}", stacklevel=3)
        bar.update(settings.views)

    try:
        if workers <= 1:
            try:
                for job in jobs:
                    collect(render_job(job, settings, skip_bad))
            finally:
                _release_renderer()
        else:
            # Forking a process that has loaded TensorFlow can deadlock on its thread pools: spawn then.
            forkable = "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
            method = "fork" if forkable else "spawn"
            context = multiprocessing.get_context(method)
            stop, error = context.Event(), None
            with context.Pool(workers, _init_worker, (settings, skip_bad, stop)) as pool:
                for job, reason, err in pool.imap_unordered(_work, jobs, chunksize=1):
                    if err is not None or reason == _CANCELLED:
                        error = error or err
                        stop.set()
                    else:
                        collect((job, reason))
                pool.close()
                pool.join()
            if error is not None:
                raise error
    finally:
        bar.close()
    done.sort(key=lambda j: j.index)
    skipped.sort(key=lambda js: js[0].index)
    return Report(done, skipped, time.perf_counter() - start)
