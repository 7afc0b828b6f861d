"""AugSelf (Lee et al., NeurIPS 2021): SimCLR plus prediction of the augmentation-parameter difference.

On the scikit-image photos with the SimCLR policy: the recipe of AugSelf's code (hankook/AugSelf,
`pretrain.py --framework simclr --ss-crop 1.0 --ss-color 1.0`) on the whole representation (no
split): SimCLR with tau 0.2, and one 512-512 MLP per augmentation on `concat[f1, f2]` and the
reversed pair, predicting w1 - w2 of the crop (centre and size, AugSelf's flip correction) and of
the colour jitter (each factor over its range's width), as tanh outputs regressed with MSE
(`ParameterPrediction(mode="difference", ...)`; CIPER's `configs/ciper.py` predicts both views'
values instead). `tools/parity/augself.py` checks these settings against AugSelf's code. The
optimizer stays the package's CPU-scale AdamW (AugSelf: SGD, lr 0.03 x batch / 256, momentum
0.9, weight decay 5e-4 as an L2 term, cosine). docs/methods/augself.md.

    keras-eqssl-train --config=configs/augself.py
"""

from configs.common import method_config


def get_config():
    c = method_config("simclr", params=True)
    c.workdir = "runs/augself"
    c.data.source = "skimage_photos"
    c.augment.crop.scale = (0.2, 1.0)  # AugSelf's RandomResizedCrop(scale=(0.2, 1.0))
    c.model.split = (0, 0)  # AugSelf reads the whole representation for both losses
    c.model.invariance.simclr.temperature = 0.2  # trainers.simclr
    p = c.model.params
    p.mode = "difference"
    p.targets = "crop,color"
    p.features = "all"
    p.hidden_units = "512-512"
    p.heads = "per_target"
    p.symmetric = True
    p.crop_target = "center"
    p.target_scales = "jitter"  # each colour factor over its range's width (config.augment.jitter)
    p.standardize = False
    p.output_activation = "tanh"
    p.reduction = "sum"
    return c
