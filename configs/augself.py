"""AugSelf (Lee et al., NeurIPS 2021): SimCLR plus prediction of the augmentation-parameter difference.

On the scikit-image photos with the SimCLR policy: an MLP on both views' equivariant halves
predicts w1 - w2 of the crop and colour-jitter parameters (`ParameterPrediction(mode="difference")`;
CIPER's `configs/ciper.py` predicts both views' values instead). docs/methods/augself.md.

    keras-eqssl-train --config=configs/augself.py
"""

from keras_eqssl.default_config import method_config


def get_config():
    c = method_config("simclr", params=True)
    c.workdir = "runs/augself"
    c.data.source = "skimage_photos"
    c.model.params.mode = "difference"
    c.model.params.targets = "crop,color"
    return c
