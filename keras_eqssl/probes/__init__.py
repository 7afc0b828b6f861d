"""Evaluation on frozen features: augmentation-parameter and 3DIEBench regression, classification.

Every probe takes an `encode` callable, `encode(uint8 (N, H, W, 3)) -> {"embedding", "invariant",
"equivariant"}` of float32 (N, C): an exported SavedModel (`keras_eqssl.export.load_encoder`), a
Keras model in memory (`encoder_from_model`), or any NumPy function. Every probe returns `Score`s
(`results`): one figure per (probe, target, part, head, metric), with its value in each repeat,
printed as mean ± std next to the constant predictor.

- `results`: the results format and every shared name (parts, heads, targets, families, metrics).
- `features`: `extract` (batched, tqdm, on-disk `.npz` cache), `encoder_from_model`.
- `r2`: R² per dimension (sklearn's), its mean, and SIE's global-mean R².
- `linear`: ridge regression and classification heads, the penalty chosen by grouped cross-validation.
- `heads`: MLP heads early-stopped on held-out groups (`train_mlp`).
- `repeats`: repeats, bootstrap of test groups, the score collector.
- `threedie` (`threedie_probe`): SIE's 3DIEBench protocol (relative rotation, colour).
- `params` (`param_probe`): the flagship paper's protocol (rotation, colour, blur, translation parameters).
- `classification`: linear-probe and kNN top-1.
- `low_label`: top-1 with 1% and 10% of the labels (linear probe, optional fine-tuning), over seeds.
- `evaluate`: every probe a data source allows, on several SavedModels, then the report.
- `statistics`: paired differences over seeds, t intervals, Holm–Bonferroni (the results pages' rule).
- `tables`, `report`, `plots`: the Markdown report and its figures.

Names are imported lazily: `keras_eqssl.probes.results` and `r2` load without TensorFlow.

Example:
>>> from keras_eqssl.export import load_encoder                                  # doctest: +SKIP
>>> from keras_eqssl.probes import param_probe, one                             # doctest: +SKIP
>>> encode = load_encoder("runs/recon/export")                                   # doctest: +SKIP
>>> scores = param_probe(encode, images, photo_ids, families=["rotation"])        # doctest: +SKIP
>>> one(scores, target="rotation", part="equivariant", head="linear", metric="r2").text()  # doctest: +SKIP
'0.41 ± 0.03'
"""

from keras_eqssl.lazy_exports import lazy_getattr as _lazy_getattr

_EXPORTS = {
    "keras_eqssl.probes.results": (
        "FAMILIES",
        "PARTS",
        "KEY_METRICS",
        "ModelResults",
        "Score",
        "compare",
        "key_numbers",
        "one",
        "pick",
        "read_metrics",
    ),
    "keras_eqssl.probes.features": ("encoder_from_model", "extract"),
    "keras_eqssl.probes.r2": ("r2_global_mean", "r2_mean", "r2_per_dim"),
    "keras_eqssl.probes.linear": ("fit_constant", "fit_ridge", "fit_ridge_classifier"),
    "keras_eqssl.probes.heads": ("TrainedHead", "train_mlp"),
    "keras_eqssl.probes.threedie": ("threedie_probe", "threedie_scores"),
    "keras_eqssl.probes.params": ("extract_param_features", "family_ops", "param_probe", "param_scores"),
    "keras_eqssl.probes.classification": (
        "classification_probe",
        "classification_scores",
        "knn_predict",
        "knn_top1",
        "linear_top1",
    ),
    "keras_eqssl.probes.low_label": (
        "LowLabelScore",
        "balanced_subset",
        "finetuner",
        "low_label_probe",
        "low_label_scores",
        "low_label_table",
    ),
    "keras_eqssl.probes.evaluate": ("EvalData", "evaluate_encoder", "evaluate_models"),
    "keras_eqssl.probes.report": ("write_report",),
    "keras_eqssl.probes.statistics": (
        "PairedDifference",
        "Verdict",
        "family_verdicts",
        "holm",
        "holm_adjusted",
        "paired_difference",
        "t_interval",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


__getattr__ = _lazy_getattr(__name__, _WHERE, globals())


def __dir__():
    return sorted([*globals(), *__all__])
