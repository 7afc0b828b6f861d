"""SimSiam (Chen & He, CVPR 2021) + cross-attention reconstruction.

SimSiam (Chen & He, CVPR 2021): predictor + stop-gradient, negative cosine.
Plus cross-attention reconstruction (arXiv 2412.03314) on the equivariant half of a 64/64 split.

    keras-eqssl-train --config=configs/simsiam_recon.py
    keras-eqssl-train --config=configs/simsiam_recon.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("simsiam", recon=True)
