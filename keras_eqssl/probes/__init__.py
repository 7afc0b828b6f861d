"""Evaluation on frozen features: augmentation-parameter and 3DIEBench regression, classification.

Every probe takes an `encode` callable, `encode(uint8 (N, H, W, 3)) -> {"embedding", "invariant",
"equivariant"}` of float32 (N, C): an exported SavedModel (`encoder_from_saved_model`), a Keras
model in memory (`encoder_from_model`), or any NumPy function.

- `features`: `extract` (batched, tqdm, on-disk `.npz` cache), the encoder adapters.
- `r2`: R² per dimension (sklearn's), its mean, and SIE's global-mean R².
- `heads`: linear / MLP Keras heads on frozen features (`train_head`).
- `threedie` (`threedie_probe`): SIE's 3DIEBench protocol (relative rotation, colour, class).
- `params` (`param_probe`): the flagship paper's protocol (rotation, colour, blur, translation parameters).
- `classification`: linear-probe and kNN top-1.
- `online`: `OnlineLinearProbe`, a `PairModel` objective that reports `online_top1` while training.

Names are imported lazily: `keras_eqssl.probes.r2` loads without TensorFlow.

Example:
>>> from keras_eqssl.probes import encoder_from_saved_model, param_probe   # doctest: +SKIP
>>> encode = encoder_from_saved_model("runs/recon/export")                   # doctest: +SKIP
>>> param_probe(encode, images)["results"]["embedding"]["linear"]           # doctest: +SKIP
"""

import importlib as _importlib

_EXPORTS = {
    "keras_eqssl.probes.features": (
        "PARTS",
        "SavedModelEncoder",
        "encoder_from_model",
        "encoder_from_saved_model",
        "extract",
    ),
    "keras_eqssl.probes.r2": ("r2_global_mean", "r2_mean", "r2_per_dim"),
    "keras_eqssl.probes.heads": ("HEADS", "TrainedHead", "build_head", "resolve_heads", "train_head"),
    "keras_eqssl.probes.threedie": ("TARGETS", "threedie_probe"),
    "keras_eqssl.probes.params": ("FAMILIES", "extract_param_features", "family_ops", "param_probe"),
    "keras_eqssl.probes.classification": ("classification_probe", "knn_predict", "knn_top1", "linear_top1"),
    "keras_eqssl.probes.online": ("OnlineLinearProbe",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'keras_eqssl.probes' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
