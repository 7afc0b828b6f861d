"""BYOL (Grill et al., NeurIPS 2020): the baseline, without the reconstruction branch.

BYOL (Grill et al., NeurIPS 2020): a predictor regresses an EMA target network (tau 0.99 -> 1, cosine).
The whole representation is invariant (no split).

    keras-eqssl-train --config=configs/byol.py
    keras-eqssl-train --config=configs/byol.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("byol")
