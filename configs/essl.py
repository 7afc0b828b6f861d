"""E-SSL (Dangovski et al., ICLR 2022): SimCLR plus 4-way rotation prediction of a small crop.

On the scikit-image photos with the `essl` policy: the SimCLR pair (32 px) plus one small crop
(scale 0.05-0.14, 16 px as E-SSL's CIFAR recipe) shown in all four 90-degree rotations. A head
(Linear-LN-ReLU x2 -> 4) on the backbone's whole vector classifies the rotation (cross-entropy,
weight 0.4). No split: E-SSL's rotation head reads the whole representation.
docs/methods/essl.md.

    keras-eqssl-train --config=configs/essl.py

E-SSL's CIFAR-10 rotated crop (scale 0.2-1, flip, jitter and grayscale on the crop) and pair (no blur):

    keras-eqssl-train --config=configs/essl.py --config.augment.essl.scale="(0.2, 1.0)" \
        --config.augment.essl.chain=True --config.augment.crop.scale="(0.2, 1.0)" --config.augment.blur.p=0.0

The SimCLR part is SimCLR's NT-Xent (all 2B - 1 others per anchor, temperature 0.1). E-SSL's own
(cross-view InfoNCE at temperature 0.5, projector ending in a BN without scale and shift):

    keras-eqssl-train --config=configs/essl.py --config.model.invariance.simclr.negatives=cross_view \
        --config.model.invariance.simclr.projector_last_bn=non_affine \
        --config.model.invariance.simclr.projector_last_bias=False --config.model.invariance.simclr.temperature=0.5
"""

from configs.common import method_config


def get_config():
    c = method_config("simclr", objectives=("essl",), split=(0, 0))
    c.data.source = "skimage_photos"
    c.augment.policy = "essl"
    c.augment.essl.size = 16
    return c
