"""The trained backbone as a trainable Keras model, for fine-tuning and transfer.

- `feature_model(source)`: images float32 `(N, H, W, 3)` in [0, 1] -> the pooled feature vector
  `(N, D)` float32, with the mean/std normalisation the trained model applied. Its layers are the
  trained backbone's own (the weights are shared with the model it came from, not copied), and
  `trainable` is True: `fit` updates them.
- `classifier(features, num_classes)`: a Dense head (logits) on such a model.

The recipe (docs/guide/finetuning.md): train the head with the backbone frozen, then unfreeze and
fine-tune everything with a learning rate ten times smaller:

```python
import keras
from keras_eqssl.export import classifier, feature_model

features = feature_model("runs/default")            # a workdir, a checkpoint or a model.keras
model = classifier(features, num_classes=10)        # images in [0, 1] -> logits
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
features.trainable = False                          # 1. the head alone
model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
model.fit(images, labels, epochs=10)
features.trainable = True                           # 2. everything, a smaller step
model.compile(keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])  # recompile after changing trainable
model.fit(images, labels, epochs=10)
```

BatchNorm: by default (`batch_norm="inference"`) the backbone runs in inference mode inside the
feature model, also under `fit`: its BatchNorm layers normalise with the moving statistics of
pretraining and do not update them, while their scale and offset still train. This is what Keras'
transfer-learning guide recommends for small labelled sets (batch statistics of a few images are
noisy, and updating the moving statistics undoes pretraining). `batch_norm="train"` lets `fit`
use and update the batch statistics, as in pretraining (for large labelled sets).
"""

from __future__ import annotations

import os

import keras
import numpy as np

import keras_eqssl.methods  # noqa: F401  (registers the backbone classes a saved feature model holds)

OUTPUTS = ("embedding", "invariant", "equivariant")
BATCH_NORM_MODES = ("inference", "train")


@keras.saving.register_keras_serializable(package="keras_eqssl")
class InferenceMode(keras.layers.Layer):
    """Runs `layer` in inference mode always (`training=False`), under `fit` too; its weights still train.

    A functional model's `training` flag reaches every layer inside it, whatever a call passed
    when the model was built; this wrapper is what keeps a backbone's BatchNorm on its moving
    statistics (and them unchanged) while its other weights are fine-tuned.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs):
        return self.layer(inputs, training=False)

    def compute_output_spec(self, inputs):
        return self.layer.compute_output_spec(inputs)

    def get_config(self) -> dict:
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def _ssl_model(source):
    """An `SSLModel` (returned as it is) or a path `load_model` reads (a `.keras` file, checkpoints, a workdir)."""
    if isinstance(source, (str, os.PathLike)):
        from keras_eqssl.export.saved_model import load_model

        return load_model(source)
    from keras_eqssl.export.saved_model import _check_model

    _check_model(source)
    return source


def feature_model(
    source,
    *,
    output: str = "embedding",
    batch_norm: str = "inference",
    name: str = "features",
) -> keras.Model:
    """The trained backbone of `source` as a trainable Keras model: images -> pooled features.

    Args:
        source: a keras_eqssl model (`SSLModel`: `PairModel`, `TeacherStudentModel`), or a path:
            a `.keras` file (`model.keras`, `checkpoints/ckpt-*.keras`), a `checkpoints/`
            directory (its newest checkpoint) or a training workdir (its `model.keras`, else its
            newest checkpoint); see `keras_eqssl.export.load_model`.
        output: `"embedding"` (the whole pooled vector, what a classifier uses), `"invariant"` or
            `"equivariant"` (the model's split of it; the whole vector when it has none).
        batch_norm: `"inference"` (the backbone always runs in inference mode: BatchNorm uses and
            keeps its moving statistics) or `"train"` (`fit` uses batch statistics and updates
            them). See the module doc.
        name: the Keras model's name.

    Returns:
        A functional `keras.Model`: float32 `(N, H, W, 3)` in [0, 1] (`H, W` the training
        `image_size`) -> float32 `(N, D)`, equal to `source(images)[output]`. `trainable` is True;
        its weights are the source's backbone weights (shared). It saves to `.keras` and loads
        back with `keras.models.load_model` in a process that imported `keras_eqssl.export.finetune`
        (e.g. `from keras_eqssl import feature_model`).

    Example:
    >>> from keras_eqssl.methods import PairModel, VICReg
    >>> from keras_eqssl.nn import backbone_from_name
    >>> ssl = PairModel(backbone_from_name("resnet18", stem="cifar", width=0.0625),
    ...                 VICReg(projector_units=[16, 16]), split=(16, 16), image_size=16)
    >>> features = feature_model(ssl)
    >>> features(np.zeros((2, 16, 16, 3), np.float32)).shape
    TensorShape([2, 32])
    """
    if output not in OUTPUTS:
        raise ValueError(f"feature_model: output must be one of {OUTPUTS}; received {output!r}")
    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"feature_model: batch_norm must be one of {BATCH_NORM_MODES}; received {batch_norm!r}")
    ssl = _ssl_model(source)
    images = keras.Input((*ssl.image_size, 3), dtype="float32", name="images")
    variance = list(np.square(ssl.std))
    normalized = keras.layers.Normalization(mean=list(ssl.mean), variance=variance, name="normalize")(images)
    backbone = InferenceMode(ssl.backbone, name="backbone") if batch_norm == "inference" else ssl.backbone
    parts = ssl.representation(backbone(normalized))
    pooled = keras.layers.Activation("linear", dtype="float32", name=output)(parts[output])
    model = keras.Model(images, pooled, name=name)
    model.trainable = True
    return model


def classifier(
    features: keras.Model,
    num_classes: int,
    *,
    dropout: float = 0.0,
    name: str = "classifier",
) -> keras.Model:
    """A Dense head on `features` (a `feature_model`): images -> class logits.

    Args:
        features: images `(N, H, W, 3)` -> features `(N, D)`; its layers are shared, so
            `features.trainable = False` freezes the backbone inside the classifier too.
        num_classes: K, the number of classes (>= 2).
        dropout: dropout rate before the head (0: none).
        name: the Keras model's name.

    Returns:
        A `keras.Model`: images -> logits `(N, K)` float32; train it with
        `SparseCategoricalCrossentropy(from_logits=True)`.

    Example:
    >>> inputs = keras.Input((8, 8, 3)); backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    >>> classifier(backbone, num_classes=5)(np.zeros((2, 8, 8, 3), np.float32)).shape
    TensorShape([2, 5])
    """
    if int(num_classes) < 2:
        raise ValueError(f"classifier: num_classes must be >= 2; received {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"classifier: dropout must be in [0, 1); received {dropout}")
    images = keras.Input(features.input_shape[1:], dtype="float32", name="images")
    x = features(images)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(int(num_classes), dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=name)
