"""SimSiam (Chen & He, CVPR 2021): the baseline, without the reconstruction branch.

SimSiam (Chen & He, CVPR 2021): predictor + stop-gradient, negative cosine.
The whole representation is invariant (no split).

    keras-eqssl-train --config=configs/simsiam.py
    keras-eqssl-train --config=configs/simsiam.py --config.data.source=skimage_photos  # photos, SimCLR views
"""

from configs.common import method_config


def get_config():
    return method_config("simsiam")
