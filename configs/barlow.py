"""Barlow Twins (Zbontar et al., ICML 2021): the baseline, without the reconstruction branch.

Barlow Twins (Zbontar et al., ICML 2021): cross-correlation to identity, lambda 5e-3.
The whole representation is invariant (no split).

    keras-eqssl-train --config=configs/barlow.py
    keras-eqssl-train --config=configs/barlow.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("barlow")
