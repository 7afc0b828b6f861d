"""The recipes the config files share: one method (`method_config`) and GTSA (`gtsa_config`).

A config file in this folder imports them as `from configs.common import method_config`: the
training job puts the folder above a config file's folder on `sys.path` while it loads the file.
Each recipe starts from the schema and its defaults (`keras_eqssl.default_config.get_config`).
"""

import ml_collections

from keras_eqssl.default_config import get_config, registered_objectives


def method_config(
    invariance: str, recon: bool = False, params: bool = False, split=(64, 64), objectives=()
) -> ml_collections.ConfigDict:
    """The config of one method: `invariance` alone (no split: the whole representation is
    invariant), or with objectives on the equivariant part of a `split`: the cross-attention
    reconstruction branch (`recon`), parameter prediction (`params`), or any registered objective
    named in `objectives` (e.g. `("stl",)`). Used by the files in `configs/`.

    Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as
    SIE); `--config.data.source=skimage_photos` (or any image source) makes pairs with the
    augmentation policy instead.
    """
    c = get_config()
    enabled = [*(["recon"] if recon else []), *(["params"] if params else []), *objectives]
    c.workdir = "runs/" + "_".join([invariance, *enabled])
    c.model.invariance.name = invariance  # its section, model.invariance.<invariance>, has the loss's own defaults
    if invariance == "byol":
        c.augment.policy = "byol"  # the asymmetric BYOL pair when training on photos
        c.augment.jitter.saturation = 0.2
    c.model.split = tuple(split) if enabled else (0, 0)
    for name in registered_objectives():
        c.model[name].enabled = name in enabled
    return c


def gtsa_config(dino_baseline: bool = False) -> ml_collections.ConfigDict:
    """GTSA (`model.method="teacher_student"`) on crops of the bundled photos, or its DINO-like baseline.

    The recipe of GTSA's code at CPU scale: the `gtsa` multi-crop (2 global + 4 local crops, each
    turned by k * 90 degrees, GTSA's strong colour jitter), the tiny ViT (patch 8) at 64 / 32 px,
    AdamW lr 1e-3 with a 10% warm-up and a cosine, weight decay 0.04 -> 0.4 on
    weights only, each gradient clipped to norm 3, EMA teacher 0.996 -> 1, patch correspondence
    after the warm-up. `dino_baseline`: the same backbone, crops (upright) and budget, trained by
    DINO's loss alone (the `dino` part instead of GTSA's crop, correspondence and rotation parts).
    Used by `configs/gtsa.py` and `configs/gtsa_dino.py`.
    """
    c = get_config()
    c.workdir = "runs/" + ("gtsa_dino" if dino_baseline else "gtsa")
    c.model.method = "teacher_student"
    for name in registered_objectives():
        c.model[name].enabled = False
    c.model.backbone = "vit_tiny"
    c.model.split = (0, 0)
    c.data.source = "skimage_photos"
    c.data.photos = "train"  # the held-out photos stay for the probes
    c.data.image_size = 128
    c.data.batch_size = 64
    c.augment.policy = "gtsa"
    c.augment.size = 64
    c.augment.gtsa.local_size = 32
    c.augment.gtsa.num_local = 4
    c.augment.jitter.update(dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, p=0.8))
    c.augment.blur.p = 0.2
    c.train.steps = 600
    c.optim.name = "adamw"
    c.optim.lr = 1e-3  # GTSA's lr at its batch of 512; its rule 5e-4 x batch / 256 gives 1.25e-4 at 64
    c.optim.schedule = "cosine"
    steps = c.train.get_ref("steps")  # warm-ups follow --config.train.steps
    c.optim.warmup_steps = steps // 10
    c.optim.weight_decay = 0.04
    c.optim.weight_decay_end = 0.4
    c.optim.decay_matrices_only = True
    c.optim.clipnorm = 3.0
    # The tiny ViT's step is too small for bf16 to pay: 1.45x slower than float32 at batch 64 on a
    # CPU with avx512_bf16 (docs/performance.md), where `auto` would pick bf16. ViT-S/16: try auto.
    c.train.precision = "float32"
    ts = c.model.teacher_student
    ts.name = "dino" if dino_baseline else "gtsa"
    ts.correspondence.warmup_steps = steps // 10
    ts.dino.units, ts.dino.hidden_units = 4096, 512  # ViT-S/16: 65536 and 2048
    if dino_baseline:
        ts.crop.weight = ts.correspondence.weight = ts.rotation.weight = 0.0
        ts.dino.weight = 1.0
        c.augment.gtsa.rotate = False
    return c
