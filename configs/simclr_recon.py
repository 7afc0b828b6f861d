"""SimCLR (Chen et al., ICML 2020) + cross-attention reconstruction.

SimCLR (Chen et al., ICML 2020): NT-Xent (temperature 0.1) on a 512-128 projector.
Plus cross-attention reconstruction (arXiv 2412.03314) on the equivariant half of a 64/64 split.

    keras-eqssl-train --config=configs/simclr_recon.py
    keras-eqssl-train --config=configs/simclr_recon.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("simclr", recon=True)
