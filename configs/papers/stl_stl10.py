"""STL (Yu et al., NeurIPS 2024) on STL-10 at 96 px: the official code's own data and schedule.

configs/stl.py's recipe (the official STL10 recipe: ResNet-18 with the ImageNet stem, aligned
pairs, SimCLR + STL's equivariance and transformation terms, SGD lr 0.03 with torch's L2 decay
5e-4, cosine) on tfds `stl10`: `train+unlabelled` (105,000 images; the official code's
`split='train+unlabeled'`) at their 96 px, normalised with the code's STL10 statistics, batch 256
(128 aligned pairs) for 200 epochs: 200 x 410 = 82,000 steps.

Aims at: the STL-10 / ResNet-18 pre-training behind STL's linear-transfer results ("7 out of 11
benchmarks"); the paper's tables are not restated here, so there is no number to match yet.
[INFERRED]: the cosine is stepped per step (the code steps it per epoch); the probes after
training use the first `data.num_images` images of the training split (the labelled train images
come first); score STL-10's labelled test split with the second command.

    tfds build stl10                                       # once, where it can download
    keras-eqssl-train --config=configs/papers/stl_stl10.py
    keras-eqssl-evaluate --model=runs/stl_stl10/export --data=tfds:stl10:test --image_size=96
"""

from configs.papers import STL10_TRAIN_UNLABELLED_IMAGES, schedule, tfds_data
from configs.stl import get_config as stl_recipe


def get_config():
    c = stl_recipe()
    c.workdir = "runs/stl_stl10"
    tfds_data(c, "stl10", "train+unlabelled", image_size=96)
    c.augment.size = 96
    c.model.normalization = "stl10"  # the official code's STL10 mean and std
    schedule(c, epochs=200, examples=STL10_TRAIN_UNLABELLED_IMAGES, batch_size=256)
    return c
