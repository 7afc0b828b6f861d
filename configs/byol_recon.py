"""BYOL (Grill et al., NeurIPS 2020) + cross-attention reconstruction.

BYOL (Grill et al., NeurIPS 2020): a predictor regresses an EMA target network (tau 0.99 -> 1, cosine).
Plus cross-attention reconstruction (arXiv 2412.03314) on the equivariant half of a 64/64 split.

    keras-eqssl-train --config=configs/byol_recon.py
    keras-eqssl-train --config=configs/byol_recon.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("byol", recon=True)
