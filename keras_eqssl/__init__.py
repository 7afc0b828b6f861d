"""keras_eqssl: self-supervised learning in Keras 3 that keeps equivariant features.

Public API: the names in `__all__`. Everything else is importable but private by convention.
Names are imported lazily (on first use), so `import keras_eqssl` does not load TensorFlow:
the renderer, for one, must create its GL context before TensorFlow's LLVM is loaded.
"""

import os as _os

from keras_eqssl.lazy_exports import lazy_getattr as _lazy_getattr
from keras_eqssl.onednn import choose_onednn as _choose_onednn

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up INFO lines; set it yourself to see them
# oneDNN's CPU kernels on where they are faster (x86-64 with AVX2), unless TF_ENABLE_ONEDNN_OPTS is
# set or TensorFlow is already imported; `train.deterministic=True` turns them off for bit-exact
# resume (keras_eqssl/onednn.py, docs/performance.md).
_choose_onednn()

__version__ = "0.1.0"

_EXPORTS = {
    "keras_eqssl.augment": (
        "AugMix", "ColorJitter", "Compose", "Flip", "GaussianBlur", "Grayscale", "OpLayer", "ParamSpec", "RandomApply",
        "RandomChoice", "RandomResizedCrop", "Rotate90", "Rotation", "Solarize", "Translation", "make_seed",
    ),
    "keras_eqssl.augment.policies": (
        "AlignedPairsPolicy", "MultiCropPolicy", "Policy", "RotatedCropPolicy", "ViewsPolicy", "byol",
        "policy_from_config", "simclr", "stl",
    ),
    "keras_eqssl.checkpoints": ("latest_checkpoint", "save_atomically"),
    "keras_eqssl.config_validation": ("validate",),
    "keras_eqssl.data": ("skimage_photos", "threedie_pairs", "view_batches"),
    # from its module: once anything imports the module keras_eqssl.data.train_batches, the package's
    # attribute of that name is the module, not the function
    "keras_eqssl.data.train_batches": ("train_batches",),
    "keras_eqssl.distribute": ("strategy_from_name",),
    "keras_eqssl.errors": ("ConfigError", "InputError"),
    "keras_eqssl.export": ("Encoder", "export_checkpoint", "export_encoder", "load_encoder"),
    "keras_eqssl.export.finetune": ("classifier", "feature_model"),
    "keras_eqssl.probes.low_label": ("low_label_probe", "low_label_scores", "low_label_table"),
    "keras_eqssl.methods": (
        "BYOL", "BarlowTwins", "CorrespondenceTerm", "CoupledSGD", "CropTerm", "CrossAttentionReconstruction",
        "DINOTerm", "ESSL", "INVARIANCES", "Invariance", "MODEL_KINDS", "OBJECTIVES", "Objective", "PairModel", "ParameterPrediction",
        "RotationTerm", "SIE", "SSLModel", "STL", "ScheduledAdamW", "SimCLR", "SimSiam", "TeacherStudentModel",
        "TeacherStudentTerm", "TorchAdam", "VICReg",
    ),
    "keras_eqssl.methods.collapse": ("CollapseMonitor",),
    "keras_eqssl.methods.callbacks": (
        "CheckpointWriteError", "Checkpointer", "ModelWriteError", "NonFiniteLossError", "ReconstructionImages",
        "StopOnNonFinite", "StopOnSignal", "Throughput", "TrainingInterrupted",
    ),
    "keras_eqssl.methods.factory": ("model_from_config", "optimizer_from_config"),
    "keras_eqssl.losses": (
        "barlow_twins", "byol_momentum", "dino_loss", "ema_update", "negative_cosine", "nt_xent",
        "parameter_regression", "patch_correspondence", "reconstruction_mse", "roi_cosine", "rotation_prediction",
        "unscale", "vicreg",
    ),
    "keras_eqssl.nn": (
        "MLP", "VIT_PRESETS", "Backbone", "ConvDecoder", "ConvPredictor", "ConvProjector", "CrossAttention",
        "DINOHead", "FusedBatchNormalization", "KerasHubBackbone", "LinearHypernetwork", "ResNetBackbone", "VisionTransformer", "available_backbones",
        "backbone_from_name", "load_backbone_weights", "load_mlp_weights", "load_resnet_weights", "load_vit_weights", "read_state_dict",
        "roi_align", "state_dict_from",
    ),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = ("augment", "data", "distribute", "export", "losses", "methods", "nn", "probes")

__all__ = sorted([*_WHERE, *_SUBMODULES])


__getattr__ = _lazy_getattr(__name__, _WHERE, globals(), submodules=_SUBMODULES)


def __dir__():
    return sorted([*globals(), *__all__])
