"""Self-supervised losses: pure functions of tensors, float32 math, replica-aware under `tf.distribute`.

One loss per file, each with its paper's equation and tensor shapes in the docstring. Inside
`strategy.run` every loss uses the global batch (negatives and statistics are gathered across
replicas) and returns global_loss / num_replicas; see `keras_eqssl.losses.distributed`.
"""

from keras_eqssl.losses.barlow_twins import barlow_twins
from keras_eqssl.losses.dino import dino_center_update, dino_loss
from keras_eqssl.losses.distributed import unscale
from keras_eqssl.losses.ema import byol_momentum, ema_copy, ema_update
from keras_eqssl.losses.negative_cosine import negative_cosine
from keras_eqssl.losses.nt_xent import nt_xent
from keras_eqssl.losses.parameter_regression import parameter_regression
from keras_eqssl.losses.patch_correspondence import patch_correspondence
from keras_eqssl.losses.reconstruction import reconstruction_mse
from keras_eqssl.losses.roi_cosine import roi_cosine
from keras_eqssl.losses.rotation_prediction import rotation_prediction
from keras_eqssl.losses.vicreg import vicreg

__all__ = [
    "barlow_twins",
    "byol_momentum",
    "dino_center_update",
    "dino_loss",
    "ema_copy",
    "ema_update",
    "negative_cosine",
    "nt_xent",
    "parameter_regression",
    "patch_correspondence",
    "reconstruction_mse",
    "roi_cosine",
    "rotation_prediction",
    "unscale",
    "vicreg",
]
