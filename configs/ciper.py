"""CIPER: contrastive invariance + predicted transformation parameters.

CIPER (Xu & Triesch, arXiv 2302.02330; re-implemented after trieschlab/AASSL): SimCLR on the
invariant half, and an MLP on both views' equivariant halves that regresses the pair's
transformation (batch-standardised MSE): relative rotation and colour on renders, crop and
colour parameters on photos (`config.model.params.targets`).

    keras-eqssl-train --config=configs/ciper.py
    keras-eqssl-train --config=configs/ciper.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from keras_eqssl.default_config import method_config


def get_config():
    return method_config("simclr", params=True)
