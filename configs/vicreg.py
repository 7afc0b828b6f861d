"""VICReg (Bardes et al., ICLR 2022): the baseline, without the reconstruction branch.

VICReg (Bardes et al., ICLR 2022): variance-invariance-covariance (25/25/1) on a 512-512-512 projector.
The whole representation is invariant (no split).

    keras-eqssl-train --config=configs/vicreg.py
    keras-eqssl-train --config=configs/vicreg.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("vicreg")
