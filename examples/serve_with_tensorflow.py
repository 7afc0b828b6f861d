"""Serve an exported encoder with TensorFlow alone: no keras_eqssl, no Keras model code.

What it shows: the SavedModel that `keras-eqssl-export` (or `keras_eqssl.export_encoder`) writes
loads with `tf.saved_model.load` in a process that never imports keras_eqssl; its
`serving_default` signature takes float32 images in [0, 1] of any size, `serving_uint8` raw
uint8 pixels, and both return the `embedding`, `invariant` and `equivariant` features. Its
`metadata()` function says what the encoder was trained on. The same directory serves as is in
TensorFlow Serving (docs/serving.md).

    keras-eqssl-export --checkpoint=runs/default --out=encoder    # once, from a training run
    python examples/serve_with_tensorflow.py encoder
    python examples/serve_with_tensorflow.py encoder --tiny       # 4 images instead of 64
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import tensorflow as tf  # the only library this needs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", help="the SavedModel directory the export wrote")
    parser.add_argument("--tiny", action="store_true", help="4 images")
    args = parser.parse_args()

    loaded = tf.saved_model.load(args.export_dir)
    metadata = json.loads(loaded.metadata().numpy())
    print("trained at", metadata["image_size"], "split", metadata["split"], "model", metadata["model"]["class"])

    # Any batch, any size: the signature resizes to the training size and normalises inside.
    n = 4 if args.tiny else 64
    pixels = np.random.default_rng(0).integers(0, 256, size=(n, 100, 80, 3), dtype=np.uint8)
    from_floats = loaded.signatures["serving_default"](images=tf.constant(pixels / 255.0, tf.float32))
    from_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(pixels))
    for key, value in from_floats.items():
        print(f"{key}: {tuple(value.shape)} {value.dtype.name}")
    gap = max(float(tf.reduce_max(tf.abs(from_floats[k] - from_uint8[k]))) for k in from_floats)
    print(f"serving_default and serving_uint8 agree to {gap:.1e}")


if __name__ == "__main__":
    main()
