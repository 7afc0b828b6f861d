"""From a dataset of images to batches of views and their recorded parameters."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.policies import Policy


def view_batches(
    dataset: tf.data.Dataset,
    policy: Policy,
    batch_size: int,
    seed: int = 0,
    replica: int = 0,
    first_step: int = 0,
) -> tf.data.Dataset:
    """Batches `{"image", "label"?}` elements and makes the policy's views of each batch.

    Step k of the result (counting from `first_step`, so a resumed run continues the sequence)
    uses seeds `make_seed(seed, k, replica, view)`.

    Returns a dataset of `{"views": {...}, "params": {...}, "label": (B,)?}`, the batch format of
    the architecture doc.

    Raises:
        ValueError if the dataset elements have no "image" key.
    """
    spec = dataset.element_spec
    if not isinstance(spec, dict) or "image" not in spec:
        raise ValueError(f"view_batches needs elements like {{'image': ..., 'label': ...}}; received {spec}.")
    batches = dataset.batch(batch_size, drop_remainder=True)

    def make(step, batch):
        views, params = policy(batch["image"], seed=seed, step=step + first_step, replica=replica)
        out = {"views": views, "params": params}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    return batches.enumerate().map(make, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
