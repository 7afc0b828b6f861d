"""VICReg (Bardes et al., ICLR 2022) + cross-attention reconstruction.

VICReg (Bardes et al., ICLR 2022): variance-invariance-covariance (25/25/1) on a 512-512-512 projector.
Plus cross-attention reconstruction (arXiv 2412.03314) on the equivariant half of a 64/64 split.

    keras-eqssl-train --config=configs/vicreg_recon.py
    keras-eqssl-train --config=configs/vicreg_recon.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("vicreg", recon=True)
