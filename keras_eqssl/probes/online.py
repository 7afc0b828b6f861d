"""An online linear probe: top-1 of a linear classifier on stop-gradient features, during pretraining.

`OnlineLinearProbe` is a `PairModel` objective (see `keras_eqssl.methods.objectives`): each step
it classifies both views' pooled features, **with the gradient stopped**, with one `Dense`
layer and adds its softmax cross-entropy to the model's loss. Only the probe's own weights get
a gradient from it (the encoder is untouched), so the pretraining is unchanged while `fit`
reports `online` (the probe's cross-entropy) and `online_top1` (its accuracy on the batch, before
the step) next to the other metrics, and TensorBoard plots them. This is the "online linear
classifier" of solo-learn / SimCLR's codebase.

The probe's weights are updated by the model's optimizer (with the same learning rate schedule
and weight decay as the encoder); `weight` scales its loss. Batches must carry integer labels
(`batch["label"]`, (B,) in [0, num_classes)), as the labelled sources do (scikit-image photos,
tfds, image folders, 3DIEBench).

Example:

```python
from keras_eqssl.methods import PairModel, VICReg
from keras_eqssl.probes import OnlineLinearProbe

model = PairModel(backbone, VICReg(), objectives=[OnlineLinearProbe(num_classes=16)], image_size=64)
model.compile(optimizer="adam")
history = model.fit(batches, epochs=10)  # history.history["online_top1"]
```
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_eqssl.losses.distributed import all_sum, scale
from keras_eqssl.methods.objectives.base import TOTAL, Objective

# part -> the key of the pair dict `PairModel.pair_outputs` hands objectives
_PAIR_KEYS = {"embedding": "features", "invariant": "invariant", "equivariant": "pooled"}


@keras.saving.register_keras_serializable(package="keras_eqssl")
class OnlineLinearProbe(Objective):
    """A linear classifier on stop-gradient pooled features, trained along with pretraining.

    Args:
        num_classes: K; labels must lie in [0, K).
        features: which part to classify: "embedding" (the whole vector, default), "invariant"
            or "equivariant".
        weight: scales the probe's loss (its only effect is the probe's step size).
        label_key: the batch key of the labels.

    Returns (call): `{"total": cross-entropy, "top1": accuracy}` over both views of the batch
    (global batch under `tf.distribute`, in the replica convention of `keras_eqssl.losses`); the
    model logs them as `online` and `online_top1`.
    """

    short_name = "online"
    configurable = False  # added in code: num_classes comes from the data, not from a config section

    def __init__(
        self, num_classes: int, features: str = "embedding", weight: float = 1.0, label_key: str = "label", **kwargs
    ):
        super().__init__(weight=weight, **kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"OnlineLinearProbe: num_classes must be >= 2; received {num_classes}.")
        if features not in _PAIR_KEYS:
            raise ValueError(f"OnlineLinearProbe: features must be one of {sorted(_PAIR_KEYS)}; received {features!r}.")
        self.num_classes = int(num_classes)
        self.features = features
        self.label_key = str(label_key)
        self.classifier = None

    def setup(self, context) -> None:
        super().setup(context)
        dims = {
            "embedding": context.feature_dim,
            "invariant": context.invariant_dim,
            "equivariant": context.equivariant_dim,
        }
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier", dtype=self.dtype_policy)
        self.classifier.build((None, dims[self.features]))

    def term_names(self) -> list[str]:
        return [TOTAL, "top1"]

    def call(self, pair: dict, training=None) -> dict:
        batch = pair["batch"]
        if self.label_key not in batch:
            raise ValueError(
                f"OnlineLinearProbe: the batch has no {self.label_key!r} (integer class labels); it has "
                f"{sorted(batch)}. Use a labelled source or drop the probe."
            )
        source = pair[_PAIR_KEYS[self.features]]
        x = tf.concat([tf.stop_gradient(source["v1"]), tf.stop_gradient(source["v2"])], axis=0)
        labels = tf.cast(tf.reshape(batch[self.label_key], [-1]), tf.int32)
        labels = tf.concat([labels, labels], axis=0)
        logits = tf.cast(self.classifier(x), tf.float32)
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        count = all_sum(tf.cast(tf.shape(labels)[0], tf.float32))
        return {
            TOTAL: scale(all_sum(tf.reduce_sum(ce)) / count),
            "top1": scale(all_sum(tf.reduce_sum(correct)) / count),
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "features": self.features,
            "label_key": self.label_key,
        }
