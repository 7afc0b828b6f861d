"""Pictures of data and of a trained model: each policy's views, and the main job's reconstructions.

The views come from `keras-eqssl-views` (`keras_eqssl/cli/views.py`), run on the scikit-image photos
with each policy's config; the reconstruction grid from a short main-job run (see `recon_grid`).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# policy -> the config whose policy and sizes are drawn (each sets `augment.policy`)
POLICY_CONFIGS = {
    "simclr": "configs/simclr.py",
    "byol": "configs/byol.py",
    "stl": "configs/stl.py",
    "gtsa": "configs/gtsa.py",
    "essl": "configs/essl.py",
}
RECON_WORKDIR = "/tmp/keras_eqssl_figures/main_job"
RECON_TRAIN = (
    "keras-eqssl-train --config.workdir={workdir} --config.eval.enabled=False --config.train.steps=150 "
    "--config.train.checkpoint_every=50 --config.train.image_every=0"
)


def views(path: str, policy: str, rows: int = 1) -> str:
    """`rows` photos and their views under `policy`, each view with its recorded parameters.

    The PNG is stored with a 256-colour palette (`shrink_png`) to keep the docs small.
    """
    command = [
        sys.executable, "-m", "keras_eqssl.cli.views", f"--config={POLICY_CONFIGS[policy]}",
        "--config.data.source=skimage_photos", f"--out={path}", f"--rows={rows}",
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return shrink_png(path)


def shrink_png(path: str, colours: int = 256) -> str:
    """Rewrites the PNG at `path` with a palette of `colours` colours (about 3x smaller for photos)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path


def recon_grid(path: str, workdir: str = RECON_WORKDIR, images: int = 8) -> str:
    """Targets (the rebuilt views) above the decoder's outputs, from a short main-job run.

    The run (the default config, 150 steps instead of 600, about 5 min on 2 CPU cores):

        keras-eqssl-train --config.workdir=/tmp/keras_eqssl_figures/main_job --config.eval.enabled=False \\
            --config.train.steps=150 --config.train.checkpoint_every=50 --config.train.image_every=0

    The grid shows a batch of the render pairs of the val split's objects (not trained on).
    """
    model_path = pathlib.Path(workdir) / "model.keras"
    if not model_path.exists():
        raise SystemExit(f"{model_path} does not exist: train it first with\n    {RECON_TRAIN.format(workdir=workdir)}")
    import keras

    import keras_eqssl.methods  # noqa: F401  (registers the classes model.keras names)
    from keras_eqssl.data.train_batches import first_batch, train_batches
    from keras_eqssl.default_config import get_config
    from keras_eqssl.probes.plots import reconstruction_grid

    model = keras.saving.load_model(model_path, compile=False)
    config = get_config()
    config.data.batch_size = images
    dataset, _ = train_batches(config, split="val", progress=False)
    recons = model.reconstructions(first_batch(dataset))
    if not recons:
        raise SystemExit(f"{model_path} has no reconstruction objective")
    x_hat, target = next(iter(recons.values()))  # the main job rebuilds view 2 only
    title = "The main job after 150 steps: val objects' view 2 (top) and the decoder's rebuild from the blend (below)"
    reconstruction_grid(target.numpy(), x_hat.numpy(), path, mean=model.mean, std=model.std, max_images=images,
                        title=title)  # fmt: skip
    return path


PICTURES = {
    f"views_{policy}": (lambda path, policy=policy: views(path, policy, rows=2 if policy == "stl" else 1))
    for policy in POLICY_CONFIGS
}  # STL: two photos, to show the pair sharing its crop and colour
PICTURES["recon_grid"] = recon_grid
