"""A small labelled image set for the examples: crops of scikit-image's bundled photos, labelled by photo.

`labelled_photos(n, size, seed)` -> (uint8 images (n, size, size, 3), int labels (n,)): crop i
comes from photo i % 16 (16 classes), covering 40-100% of its side at a random position, so two
seeds give two different sets of crops of the same photos (a train and a held-out split). Bundled
with scikit-image: nothing is downloaded. Replace it with your own labelled images (e.g.
`keras_eqssl.data.image_folder(DIR, size)` on `DIR/<class>/*.jpg`).
"""

from __future__ import annotations

import numpy as np

import keras_eqssl as eq


def labelled_photos(num_images: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, S, S, 3), int64 labels (N,)): crops of the 16 photos, label = photo."""
    batch = next(iter(eq.skimage_photos(image_size, num_images, seed=seed).batch(num_images)))
    return batch["image"].numpy(), batch["label"].numpy().astype(np.int64)
