"""SimCLR (Chen et al., ICML 2020) + cross-attention reconstruction.

SimCLR (Chen et al., ICML 2020): NT-Xent (temperature 0.1) on a 512-128 projector.
Plus the cross-attention reconstruction branch (Wang, Krajsek & Scharr, arXiv 2412.03314): the
equivariant half of the tokens of view 2 queries those of view 1, and a small decoder rebuilds view 2.
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/simclr_recon.py
    keras-eqssl-train --config=configs/simclr_recon.py --config.data.source=skimage_photos --config.workdir=runs/simclr_recon_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/simclr_recon"
    config.model.invariance = "simclr"
    config.model.projector = "512-128"
    config.model.temperature = 0.1
    config.model.split = (64, 64)  # 128 channels: 64 invariant (SSL loss), 64 equivariant (reconstruction)
    config.model.recon.enabled = True
    config.model.recon.weight = 1.0
    return config
