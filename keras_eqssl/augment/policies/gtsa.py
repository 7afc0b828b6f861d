"""GTSA's multi-crop (Kim et al. 2023): 2 global + N local crops, each rotated by k * 90 degrees,
with the overlap boxes between crops expressed in each crop's rotated frame."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment.base import BINARY, CONTINUOUS, ParamSpec
from keras_eqssl.augment.blur import GaussianBlur
from keras_eqssl.augment.color import ColorJitter, Grayscale
from keras_eqssl.augment.compose import Compose, RandomApply
from keras_eqssl.augment.crop import RandomResizedCrop, boxes_yxyx
from keras_eqssl.augment.geometric import Rotate90, rot90_boxes
from keras_eqssl.augment.policies.base import Policy
from keras_eqssl.augment.seeds import fold

GTSA_JITTER = dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)


def intersection(a, b):
    """Intersection of (y0, x0, y1, x1) boxes, broadcasting; returns (box, area), area 0 if empty."""
    lo = tf.maximum(a[..., :2], b[..., :2])
    hi = tf.minimum(a[..., 2:], b[..., 2:])
    extent = tf.maximum(hi - lo, 0.0)
    return tf.concat([lo, hi], axis=-1), extent[..., 0] * extent[..., 1]


def to_frame(boxes, crop):
    """Image-normalised (y0, x0, y1, x1) boxes -> coordinates normalised to `crop` (y0, x0, h, w)."""
    y0, x0, h, w = tf.unstack(crop, axis=-1)
    origin = tf.stack([y0, x0, y0, x0], axis=-1)
    extent = tf.stack([h, w, h, w], axis=-1)
    return (boxes - origin) / extent


class MultiCropPolicy(Policy):
    """GTSA multi-crop with 90-degree rotations and crop-overlap boxes.

    `rotate=False` keeps every crop upright (`rot90` is then always 0): the DINO-like baseline.
    `pil_ops=True` does the pixel arithmetic of GTSA's code, which transforms PIL images:
    torchvision's crop convention, Pillow's uint8 colour jitter and its untruncated blur (same
    parameters, images within a few uint8 levels of GTSA's; the crops take about 4.5x longer).

    Crops are drawn with the overlap rule of GTSA's code: the second global crop must overlap the
    first by more than `min_overlap_global` of the image area, and every local crop each global
    one by more than `min_overlap_local`. Instead of resampling in a Python loop, `attempts`
    candidates are drawn at once and the first that satisfies the rule is kept (else the one
    with the largest overlap).

    Views `g1`, `g2`: (B, global_size, global_size, 3); `l1`..`lN`: (B, local_size, local_size, 3).

    Params per view: crop, crop_scale, crop_ratio, color_applied, color, color_order, grayscale,
    blur_applied, blur, rot90, and
        `overlap` (B, V, 4): the intersection with every view (in `view_names()` order) as
            (y0, x0, y1, x1) normalised to *this* view's rotated frame, zeros where empty;
        `overlap_valid` (B, V): 1 where the intersection is not empty.
    """

    def __init__(
        self,
        global_size=224,
        local_size=96,
        num_local=8,
        global_scale=(0.3, 1.0),
        local_scale=(0.1, 0.3),
        ratio=(3 / 4, 4 / 3),
        min_overlap_global=0.02,
        min_overlap_local=0.01,
        attempts=16,
        jitter=None,
        jitter_p=0.8,
        grayscale_p=0.2,
        blur_sigma=(0.1, 2.0),
        blur_p=0.2,
        rotate: bool = True,
        pil_ops: bool = False,
        name: str = "gtsa",
    ):
        if int(num_local) < 0:
            raise ValueError(f"MultiCropPolicy: num_local must be >= 0; received num_local={num_local}.")
        self.kwargs = dict(
            global_size=global_size, local_size=local_size, num_local=int(num_local), global_scale=tuple(global_scale),
            local_scale=tuple(local_scale), ratio=tuple(ratio), min_overlap_global=min_overlap_global,
            min_overlap_local=min_overlap_local, attempts=int(attempts), jitter=jitter, jitter_p=jitter_p,
            grayscale_p=grayscale_p, blur_sigma=tuple(blur_sigma), blur_p=blur_p, rotate=bool(rotate),
            pil_ops=bool(pil_ops),
        )  # fmt: skip
        self.name = name
        self.num_local = int(num_local)
        self.attempts = int(attempts)
        self.min_overlap_global, self.min_overlap_local = float(min_overlap_global), float(min_overlap_local)
        # pil_ops: the pixel arithmetic of GTSA's code, which transforms PIL images (docs/parity.md#augmentations)
        crop = dict(convention="torchvision") if pil_ops else {}
        self.global_crop = RandomResizedCrop(global_size, scale=global_scale, ratio=ratio, **crop)
        self.local_crop = RandomResizedCrop(local_size, scale=local_scale, ratio=ratio, **crop)
        jitter = dict(GTSA_JITTER if jitter is None else jitter, **(dict(convention="pil") if pil_ops else {}))
        blur = dict(truncate=3.0, padding="symmetric") if pil_ops else {}
        self.colour = Compose(
            [
                RandomApply(ColorJitter(**jitter), p=jitter_p),
                Grayscale(p=grayscale_p),
                RandomApply(GaussianBlur(sigma=blur_sigma, **blur), p=blur_p),
            ],
            name="colour",
        )
        self.rotate = Rotate90() if rotate else Rotate90(ks=(0,))

    def view_names(self):
        return ["g1", "g2"] + [f"l{i + 1}" for i in range(self.num_local)]

    def param_specs(self):
        v = len(self.view_names())
        own = [
            ParamSpec(
                "overlap",
                (v, 4),
                CONTINUOUS,
                0.0,
                1.0,
                names=("y0", "x0", "y1", "x1"),
                doc="overlap box per view, rotated frame",
            ),
            ParamSpec("overlap_valid", (v,), BINARY, 0.0, 1.0, doc="1 = the crops overlap"),
        ]
        specs = lambda crop: crop.param_specs() + self.colour.param_specs() + self.rotate.param_specs() + own
        names = self.view_names()
        return {n: specs(self.global_crop if n.startswith("g") else self.local_crop) for n in names}

    def _candidates(self, crop, batch, seed, size, score_fn, threshold):
        k = self.attempts
        cand = crop.sample(batch * k, seed, image_size=size)
        cand = {key: tf.reshape(t, tf.concat([[batch, k], tf.shape(t)[1:]], 0)) for key, t in cand.items()}
        score = score_fn(boxes_yxyx(cand[crop.name]))  # (B, K)
        ok = score > threshold
        pick = tf.where(tf.reduce_any(ok, 1), tf.argmax(tf.cast(ok, tf.int32), 1, output_type=tf.int32),
                        tf.argmax(score, 1, output_type=tf.int32))  # fmt: skip
        return {key: tf.gather(t, pick, batch_dims=1) for key, t in cand.items()}

    def make_views(self, images, seeds):
        batch, size = tf.shape(images)[0], tf.shape(images)[1:3]
        names = self.view_names()
        crops = {"g1": self.global_crop.sample(batch, fold(seeds["g1"], 0), image_size=size)}
        g1 = boxes_yxyx(crops["g1"]["crop"])[:, None]
        crops["g2"] = self._candidates(
            self.global_crop,
            batch,
            fold(seeds["g2"], 0),
            size,
            lambda c: intersection(g1, c)[1],
            self.min_overlap_global,
        )
        g2 = boxes_yxyx(crops["g2"]["crop"])[:, None]
        local_score = lambda c: tf.minimum(intersection(g1, c)[1], intersection(g2, c)[1])
        for n in names[2:]:
            crops[n] = self._candidates(
                self.local_crop, batch, fold(seeds[n], 0), size, local_score, self.min_overlap_local
            )

        all_boxes = tf.stack([boxes_yxyx(crops[n]["crop"]) for n in names], axis=1)  # (B, V, 4)
        views, params = {}, {}
        for n in names:
            p = dict(crops[n])
            p.update(self.colour.sample(batch, fold(seeds[n], 1)))
            p.update(self.rotate.sample(batch, fold(seeds[n], 2)))
            inter, area = intersection(boxes_yxyx(p["crop"])[:, None], all_boxes)
            valid = tf.cast(area > 0, tf.float32)
            local = rot90_boxes(to_frame(inter, p["crop"][:, None]), p["rot90"])  # (B, V, 4)
            p["overlap"] = local * valid[..., None]
            p["overlap_valid"] = valid
            crop = self.global_crop if n.startswith("g") else self.local_crop
            views[n] = self.rotate.apply(self.colour.apply(crop.apply(images, p), p), p)
            params[n] = p
        return views, params

    def get_config(self):
        return {**self.kwargs, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
