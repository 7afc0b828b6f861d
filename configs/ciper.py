"""CIPER: contrastive invariance + predicted transformation parameters.

CIPER (Xu & Triesch, arXiv 2302.02330; re-implemented after trieschlab/AASSL, the authors
published no code): SimCLR on the invariant half, and an MLP on both views' equivariant halves
that regresses the pair's transformation, batch-standardised, with one MSE over all its
components (AASSL's `Ciper`): relative rotation and colour on renders, crop and colour parameters
on photos (`config.model.params.targets`). AASSL reads the whole representation for both losses
(`--config.model.split=0,0 --config.model.params.features=all`); `tools/parity/ciper.py` checks
the loss against AASSL's code.

    keras-eqssl-train --config=configs/ciper.py
    keras-eqssl-train --config=configs/ciper.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    c = method_config("simclr", params=True)
    c.model.params.reduction = "mean"  # AASSL: F.mse_loss over the whole action vector
    return c
