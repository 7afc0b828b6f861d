"""STL (Yu et al., NeurIPS 2024): transformation representations learned from aligned image pairs.

The STL10 recipe of the official code on the scikit-image photos: ResNet-18 with the ImageNet
stem at 96 px (torchvision's `zero_init_residual=True`), the `stl` policy (images 2i and 2i+1 share
crop, colour jitter and grayscale; flip and blur per image), 256 images (128 aligned pairs) per
batch, SGD lr 0.03 momentum 0.9 weight decay 5e-4 on a cosine schedule, the decay coupled as
`torch.optim.SGD` adds it (an L2 term in the gradient, inside the momentum). Loss: SimCLR's NT-Xent
(temperature 0.2, 512-128 projector whose last Linear has no bias) on the whole representation +
STL's equivariance (1.0) and transformation (0.1) NT-Xent terms; the hypernetwork starts from
torch's `nn.Linear` init. No split: the hypernetwork's map acts on the whole 512-d representation,
as in the paper. docs/methods/stl.md; `tools/parity/stl.py` checks it against the official code.

    keras-eqssl-train --config=configs/stl.py
    keras-eqssl-train --config=configs/stl.py --config.model.width=0.25 --config.augment.size=32  # CPU-sized
"""

from configs.common import method_config


def get_config():
    c = method_config("simclr", objectives=("stl",), split=(0, 0))
    simclr = c.model.invariance.simclr
    simclr.temperature = 0.2  # shared by the three NT-Xent terms
    simclr.projector_units = "512-128"
    simclr.projector_last_bias = False  # the official load_mlp: Linear(bias=False) everywhere
    c.model.stem = "imagenet"
    c.model.width = 1.0
    c.model.zero_init_residual = "on"  # resnet18(zero_init_residual=True)
    c.model.stl.hypernetwork_init = "torch_linear"  # nn.Linear's uniform(±1/sqrt(k)), the objective's default
    c.data.source = "skimage_photos"
    c.data.image_size = 128  # photo crops are taken from the photos resized to 128 px
    c.data.batch_size = 256  # images per batch (128 aligned pairs of images), two views each: 512 backbone passes
    c.augment.policy = "stl"
    c.augment.size = 96
    c.augment.crop.scale = (0.2, 1.0)
    c.optim.name = "sgd"
    c.optim.lr = 0.03
    c.optim.weight_decay = 5e-4
    c.optim.weight_decay_mode = "coupled"  # torch.optim.SGD: wd * w joins the gradient before the momentum
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 0
    return c
