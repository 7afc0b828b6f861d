"""GTSA (Kim et al., 2023): a student ViT and its EMA teacher on multi-crops of non-object-centric photos,
made sensitive to 90-degree rotations and crops.

Crop loss (RoIAlign of the crops' shared region, the teacher's grid turned by the difference of
the rotations), patch correspondence (weight 0.5, after a warm-up of 10% of the steps) and
rotation prediction (0.5): the `teacher_student` model kind with its crop, correspondence and rotation
parts. Tiny ViT at 64 / 32 px on the bundled photos by default; GTSA's own
scale is ViT-S/16 at 224 / 96 px with 8 local crops (second command). The baseline at the same
budget is configs/gtsa_dino.py. docs/methods/gtsa.md. The tiny ViT trains in float32 (bf16 made
its step 1.45x slower on a CPU with bf16 instructions); at ViT-S/16 scale, `auto` picks bf16 there.

    keras-eqssl-train --config=configs/gtsa.py
    keras-eqssl-train --config=configs/gtsa.py --config.model.backbone=vit_s16 --config.augment.size=224 \
        --config.augment.gtsa.local_size=96 --config.augment.gtsa.num_local=8 \
        --config.model.teacher_student.dino.units=65536 --config.model.teacher_student.dino.hidden_units=2048 \
        --config.train.precision=auto
"""

from configs.common import gtsa_config


def get_config():
    return gtsa_config()
