"""The mini-3DIEBench renderer: objects -> the 3DIEBench scene -> JPEGs + latents on disk.

Modules, one job each: `objects` (procedural meshes), `meshes` (mesh files, mesh -> GPU rows),
`scene` (latents, camera, lights, floor: the numbers), `gl` (moderngl context, shaders, one
view), `writer` (the on-disk format and splits), `jobs` (which objects, over all cores),
`sheet` (contact sheet). The command line is `keras_eqssl.cli.render`.
"""

from keras_eqssl.data.render.jobs import Job, Report, Settings, mesh_dir_jobs, procedural_jobs, render_jobs
from keras_eqssl.data.render.meshes import MeshError
from keras_eqssl.data.render.scene import LATENT_SIZE, relative_quaternion, sample_latents
from keras_eqssl.data.render.sheet import contact_sheet

__all__ = [
    "LATENT_SIZE",
    "Job",
    "MeshError",
    "Report",
    "Settings",
    "contact_sheet",
    "mesh_dir_jobs",
    "procedural_jobs",
    "relative_quaternion",
    "render_jobs",
    "sample_latents",
]
