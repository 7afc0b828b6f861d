"""GTSA (Kim et al., 2023) with ViT-S/16 on ImageNet (or COCO), at the scale of GTSA's code.

configs/gtsa.py's recipe (`gtsa_config`: student ViT and EMA teacher, crop, correspondence and
rotation losses, AdamW lr 1e-3 at batch 512 with a 10% warm-up and a cosine, weight decay 0.04 ->
0.4 on weights only, gradients clipped to norm 3, teacher EMA 0.996 -> 1) at GTSA's scale:
ViT-S/16 (drop path 0.1), 2 global crops of 224 px and 8 local crops of 96 px, DINO's head sizes
65536 / 2048, batch 512 for 100 epochs, on tfds `imagenet2012` (100 x 2502 = 250,200 steps).

Aims at: the results table of GTSA's code (README; iNaturalist-2019 fine-tuning 59.7
top-1, COCO Mask R-CNN 35.8 AP^b, ADE20K Semantic-FPN 30.6 mIoU, against DINO at 54.8 / 32.4 /
27.3), which was pre-trained on COCO train2017: the second command trains on COCO (118,287 images,
231 steps per epoch); `configs/gtsa_dino.py`'s baseline at the same settings is the DINO row.
[INFERRED]: ImageNet as the default data (GTSA used COCO or ADE20K); images centre-cropped to
256 px squares before the crops (GTSA crops the whole image); the cosine ends at 0 (GTSA: 1e-6).

    keras-eqssl-train --config=configs/papers/gtsa_imagenet.py --config.data.data_dir=/data/tfds
    keras-eqssl-train --config=configs/papers/gtsa_imagenet.py --config.data.source=image_folder \
        --config.data.root=/data/coco/train2017 --config.train.steps=23100 --config.train.checkpoint_every=2310
"""

from configs.common import gtsa_config
from configs.papers import IMAGENET_TRAIN_IMAGES, schedule, tfds_data


def get_config():
    c = gtsa_config()
    c.workdir = "runs/gtsa_imagenet"
    tfds_data(c, "imagenet2012", "train", image_size=256)
    c.model.backbone = "vit_s16"
    c.model.drop_path_rate = 0.1  # GTSA's student
    c.augment.size = 224
    c.augment.gtsa.local_size = 96
    c.augment.gtsa.num_local = 8
    c.model.teacher_student.dino.units, c.model.teacher_student.dino.hidden_units = 65536, 2048
    c.train.precision = "auto"  # the tiny ViT's float32 is for CPUs; GTSA trains in fp16 autocast
    schedule(c, epochs=100, examples=IMAGENET_TRAIN_IMAGES, batch_size=512)
    return c
