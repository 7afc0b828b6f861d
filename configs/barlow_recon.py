"""Barlow Twins (Zbontar et al., ICML 2021) + cross-attention reconstruction.

Barlow Twins (Zbontar et al., ICML 2021): cross-correlation to identity, lambda 5e-3.
Plus cross-attention reconstruction (arXiv 2412.03314) on the equivariant half of a 64/64 split.

    keras-eqssl-train --config=configs/barlow_recon.py
    keras-eqssl-train --config=configs/barlow_recon.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("barlow", recon=True)
