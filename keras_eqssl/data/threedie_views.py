"""Every view of every object of a 3DIEBench split, in memory, and relative targets of any pair.

The probes need all the views of each object (not one pair per object and epoch, as training
does), so that pairs can be drawn from all V(V-1) ordered pairs of an object:

    views = threedie_views(root, "val", image_size=64)
    views["images"]   (M, S, S, 3) uint8     M = the split's views, object by object
    views["latents"]  (M, 7) float32
    views["object"]   (M,) int64             the object's row in the split listing
    views["label"]    (M,) int64
    views["view"]     (M,) int64             k of image_k.jpg

`relative_targets(latents_1, latents_2)` gives SIE's pair targets in NumPy: the quaternion
(x, y, z, w) of R1⁻¹R2 (scipy's convention, as `keras_eqssl.data.quaternions`) and the floor and
light hue differences.
"""

from __future__ import annotations

import os

import numpy as np

from keras_eqssl.data.threedie_index import list_objects

COLOR_INDICES = (3, 6)  # floor hue, spot-light hue (as keras_eqssl.data.threedie)


def threedie_views(
    root: str | os.PathLike, split: str = "train", *, image_size: int | None = None, check_files: bool = False
) -> dict:
    """All views of a split (see the module doc); errors name a bad file.

    Args:
        root: a 3DIEBench-format root.
        split: "train" or "val".
        image_size: resize to (S, S) with antialiasing (as the pair reader does); None: as stored.
        check_files: read every file's header while listing.

    Returns:
        `{"images", "latents", "object", "label", "view"}` (see the module doc).
    """
    import tensorflow as tf

    from keras_eqssl.data.image_files import decode_jpeg_checked

    objects = list_objects(root, split, check_files=check_files)
    paths, latents, obj, labels, view = [], [], [], [], []
    for i, (object_id, count) in enumerate(zip(objects.object_ids, objects.num_views)):
        directory = os.path.join(objects.root, object_id)
        for k in range(int(count)):
            paths.append(os.path.join(directory, f"image_{k}.jpg"))
            latent_path = os.path.join(directory, f"latent_{k}.npy")
            latent = np.load(latent_path).astype(np.float32).ravel()
            if latent.shape != (7,) or not np.all(np.isfinite(latent)):
                raise ValueError(f"threedie_views: {latent_path} must hold 7 finite floats; it holds {latent.shape}.")
            latents.append(latent)
            obj.append(i)
            labels.append(objects.labels[i])
            view.append(k)
    size = objects.image_size

    def load(path):
        image = decode_jpeg_checked(tf.io.read_file(path), path, size)
        if image_size is not None:
            image = tf.image.resize(image, (image_size, image_size), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return image

    ds = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    images = np.concatenate(list(ds.batch(512).as_numpy_iterator()))
    return {
        "images": images,
        "latents": np.stack(latents),
        "object": np.asarray(obj, np.int64),
        "label": np.asarray(labels, np.int64),
        "view": np.asarray(view, np.int64),
    }


def relative_targets(latents_1, latents_2) -> dict[str, np.ndarray]:
    """SIE's pair targets from (N, 7) latents: `{"rel_rotation": (N, 4), "rel_color": (N, 2)}`.

    Example:
    >>> l1 = np.zeros((1, 7), np.float32); l2 = l1.copy(); l2[0, 2] = np.pi / 2; l2[0, 3] = 0.25
    >>> t = relative_targets(l1, l2)
    >>> t["rel_rotation"].astype(np.float64).round(4).tolist(), t["rel_color"].tolist()
    ([[0.0, 0.0, 0.7071, 0.7071]], [[0.25, 0.0]])
    """
    from scipy.spatial.transform import Rotation

    l1 = np.asarray(latents_1, np.float64)
    l2 = np.asarray(latents_2, np.float64)
    r1 = Rotation.from_euler("xyz", l1[:, :3])
    r2 = Rotation.from_euler("xyz", l2[:, :3])
    rotation = (r1.inv() * r2).as_quat().astype(np.float32)
    color = (l2[:, COLOR_INDICES] - l1[:, COLOR_INDICES]).astype(np.float32)
    return {"rel_rotation": rotation, "rel_color": color}
