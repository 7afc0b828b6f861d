"""CIPER: contrastive invariance + predicted transformation parameters.

CIPER (Xu & Triesch, arXiv 2302.02330; re-implemented after trieschlab/AASSL): SimCLR plus an MLP
on both views' features that regresses the pair's transformation (batch-standardised MSE).
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
switch to photos with the SimCLR policy by `--config.data.source=skimage_photos`.

    keras-eqssl-train --config=configs/ciper.py
    keras-eqssl-train --config=configs/ciper.py --config.data.source=skimage_photos --config.workdir=runs/ciper_photos
"""

from keras_eqssl.default_config import get_config as base_config


def get_config():
    config = base_config()
    config.workdir = "runs/ciper"
    config.model.invariance = "simclr"
    config.model.projector = "512-128"
    config.model.temperature = 0.1
    config.model.split = (64, 64)  # invariant half for NT-Xent, equivariant half for the parameter head
    config.model.recon.enabled = False
    config.model.params.enabled = True
    config.model.params.targets = "auto"  # relative rotation + colour on renders; crop + colour on photos
    config.model.params.mode = "pair"
    config.model.params.hidden = "256"
    return config
