"""AugSelf (Lee et al., NeurIPS 2021) on ImageNet-100 with a ResNet-50 at 224 px.

configs/augself.py's recipe (SimCLR, tau 0.2, plus the prediction of the crop and colour
differences by 512-512 MLPs on the whole representation) on tfds `imagenet2012` filtered to CMC's
100 classes (`keras_eqssl.data.imagenet100`), with AugSelf's ImageNet-100 setting: ResNet-50,
batch 256, 500 epochs (500 x 494 = 247,000 steps), crop and colour weights 0.5, SGD lr 0.05
(0.05 x 256 / 256) momentum 0.9 with an L2 weight decay 1e-4 and a cosine schedule.

Aims at: the ImageNet-100 rows of AugSelf's linear-evaluation table, and the baseline next to
`recon_imagenet100.py` (AugSelf's code gives this recipe; its table's numbers are not restated here).
[INFERRED]: the optimizer is AugSelf's SimSiam ImageNet-100 one (its SimCLR one is not published
with the recipe); images are centre-cropped to 256 px squares before the random crops; the probes after
training use the first `data.num_images` training images.

    keras-eqssl-train --config=configs/papers/augself_imagenet100.py --config.data.data_dir=/data/tfds
"""

from configs.augself import get_config as augself_recipe
from configs.papers import imagenet100_resnet50


def get_config():
    c = augself_recipe()
    c.workdir = "runs/augself_imagenet100"
    imagenet100_resnet50(c)
    c.model.params.weight = 0.5  # AugSelf's crop = colour = 0.5 on ImageNet-100 (1.0 on STL-10)
    c.optim.update(dict(name="sgd", lr=0.05, weight_decay=1e-4, weight_decay_mode="coupled", schedule="cosine"))
    c.optim.warmup_steps = 0
    return c
