"""SimCLR (Chen et al., ICML 2020): the baseline, without the reconstruction branch.

SimCLR (Chen et al., ICML 2020): NT-Xent (temperature 0.1) on a 512-128 projector.
The whole representation is invariant (no split).

    keras-eqssl-train --config=configs/simclr.py
    keras-eqssl-train --config=configs/simclr.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("simclr")
