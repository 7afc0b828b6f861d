"""STL with AugMix inside the aligned transformation (the abstract's point; not in the released code).

`configs/stl.py` plus AugMix (severity 3, width 3, random depth 1-3, alpha 1) after the aligned
crop, jitter and grayscale: both images of a pair get the same chains and mixing weights, so the
transformation representation can learn AugMix too. docs/methods/stl.md says what was inferred.

    keras-eqssl-train --config=configs/stl_augmix.py
"""

from configs import stl


def get_config():
    c = stl.get_config()
    c.workdir = "runs/stl_augmix"
    c.augment.stl.augmix = True
    return c
