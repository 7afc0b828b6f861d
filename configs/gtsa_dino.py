"""The DINO-like baseline of GTSA: the same tiny ViT, student / EMA teacher, multi-crops and budget as
configs/gtsa.py, trained by DINO's loss (centred, sharpened teacher; Caron et al., ICCV 2021) on the
mean patch token, with upright crops and none of GTSA's geometric losses: the `teacher_student` model
kind with its `dino` part alone. docs/methods/gtsa.md.

    keras-eqssl-train --config=configs/gtsa_dino.py
"""

from configs.common import gtsa_config


def get_config():
    return gtsa_config(dino_baseline=True)
