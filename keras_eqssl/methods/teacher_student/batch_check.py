"""The batch a `TeacherStudentModel` trains on, checked: every view at its size, every parameter its parts read."""

from __future__ import annotations

import tensorflow as tf

POLICY_HINT = 'make the batches with config.augment.policy="gtsa" (MultiCropPolicy)'


def check_batch(batch, sides: dict, params_keys: list[str]) -> None:
    """A `ValueError` naming what `batch` lacks: a view of `sides` (view -> side), a view of another
    size, or a `params[v][k]` of `params_keys`."""
    if not isinstance(batch, dict) or "views" not in batch:
        raise ValueError(
            f"TeacherStudentModel trains on batches {{'views': {{'g1', 'g2', 'l1', ...}}, 'params'}}; {POLICY_HINT}"
        )
    missing = [v for v in sides if v not in batch["views"]]
    if missing:
        raise ValueError(
            f"TeacherStudentModel: batch['views'] lacks {missing} (it has {sorted(batch['views'])}); {POLICY_HINT}"
        )
    for v, side in sides.items():
        shape = tf.TensorShape(batch["views"][v].shape)
        if shape.rank != 4 or tuple(shape[1:3]) not in ((side, side), (None, None)):
            raise ValueError(
                f"TeacherStudentModel: batch['views'][{v!r}] has shape {shape}; expected (B, {side}, {side}, 3)"
            )
    params = batch.get("params") or {}
    lacking = sorted({f"params[{v!r}][{k!r}]" for v in sides for k in params_keys if k not in params.get(v, {})})
    if lacking:
        raise ValueError(
            f"TeacherStudentModel: the batch lacks {lacking[:4]}{' ...' if len(lacking) > 4 else ''}; {POLICY_HINT}"
        )
