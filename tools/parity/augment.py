"""Augmentation parity: each op's `apply(images, params)` against torchvision's (and PIL's) on the same parameters.

For every op the papers use (random resized crop, colour jitter with its random order, grayscale,
Gaussian blur, solarize, horizontal flip, 90-degree and continuous rotation, AugMix and its ops), the
tool samples parameters with our op, converts them to the reference's arguments, applies both on the
same images and records one "augment" row: the largest pixel difference on [0, 1] images (relative =
max_abs, since pixels lie in [0, 1]). Where our default follows another convention than the reference,
two rows: our default against the reference (explained in the note) and our reference-matching option
against it (which must hold its tolerance).

The references are the official STL code's transforms (`dataset.build_transforms` of jaemyung-u/stl:
torchvision v2 on float tensors), called through their `transform(inpt, params)` with our recorded
parameters, and, for the PIL paths of GTSA, DINO and BYOL (torchvision v1 on PIL images), torchvision's
functional ops on PIL images and `PIL.ImageFilter.GaussianBlur`.

Conversions (our recorded parameter -> the reference's argument):
- crop (y0, x0, h, w) normalised -> resized_crop(top=round(y0 H), left=round(x0 W), height=round(h H),
  width=round(w W)); both sides get that integer box (ours as top / H, ...), so the row measures the
  resampling only.
- color (b, c, s, h) and color_order (4,) -> ColorJitter's brightness/contrast/saturation/hue_factor
  and fn_idx = color_order (the same "index of the op run at each stage" semantics).
- blur sigma -> GaussianBlur's params {"sigma": [sigma, sigma]} (or PIL's radius=sigma).
- rotation degrees (counter-clockwise) -> F.rotate(angle=degrees) (counter-clockwise, about the centre).
- rot90 k -> F.rotate(angle=90 k).
- AugMix magnitude m (signed fraction of the largest level) -> torchvision's magnitude: rotate 30 m
  degrees, shear 0.3 m, translate int(m W / 3) px, solarize threshold 1 - |m|, posterize
  4 - floor(4 |m|) bits, brightness / color / contrast / sharpness factor 1 + 0.9 m.

Written against jaemyung-u/stl at 2138162e17d42cf64119e19d4e5dfedfc7c858f4, torchvision 0.29 and Pillow 13.
Import order matters here: torch and torchvision are imported before TensorFlow (the other order
crashes in this environment when triton loads), which `main()` does.

    python tools/parity/augment.py --official <checkout of jaemyung-u/stl> --json docs/parity/augment.json
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import numpy as np  # noqa: E402

COMMAND = "python tools/parity/augment.py --official <checkout of jaemyung-u/stl> --json docs/parity/augment.json"
Q = 1.0 / 255.0  # one uint8 level


def photos(size: int, seed: int) -> np.ndarray:
    """(6, size, size, 3) uint8: four scikit-image photos (centre square, resized with PIL) and two noise images."""
    from PIL import Image
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = getattr(data, name)()
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC)))
    rng = np.random.default_rng(seed)
    out.append(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    smooth = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    out.append(np.asarray(Image.fromarray(smooth).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


class Runner:
    """Holds the batch and the comparison; one method per op."""

    def __init__(self, cmp, stl_transforms, seed: int):
        import torch

        self.torch = torch
        self.cmp, self.seed = cmp, seed
        self.uint8 = photos(64, seed)  # (B, 64, 64, 3)
        self.images = self.uint8.astype(np.float32) / 255.0
        self.batch = len(self.images)
        self.aligned, self.invariant = stl_transforms

    # --- helpers -------------------------------------------------------------------------
    def row(self, name: str, ours, theirs, tol: float, note: str, explained: bool = False) -> float:
        ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
        if ours.shape != theirs.shape:
            raise ValueError(f"augment/{name}: ours has shape {ours.shape}, the reference {theirs.shape}")
        diff = float(np.max(np.abs(ours - theirs)))
        self.cmp.record("augment", name, diff, diff, tol, note, explained=explained)
        return diff

    def tensor(self, images: np.ndarray, index: int | None = None):
        """NHWC float32 -> NCHW (or CHW for one image) torch tensor."""
        t = common.nchw(images)
        return t if index is None else t[index]

    @staticmethod
    def hwc(t) -> np.ndarray:
        return common.to_numpy(t).transpose(1, 2, 0)

    def pil(self, index: int, images: np.ndarray | None = None):
        from PIL import Image

        arr = self.uint8[index] if images is None else np.asarray(np.round(images[index] * 255.0), np.uint8)
        return Image.fromarray(arr)

    @staticmethod
    def from_pil(img) -> np.ndarray:
        return np.asarray(img, np.float32) / 255.0

    def per_image(self, fn) -> np.ndarray:
        return np.stack([fn(i) for i in range(self.batch)])

    # --- ops -----------------------------------------------------------------------------
    def crop(self):
        from keras_eqssl.augment import RandomResizedCrop

        stl_crop = self.aligned[0]  # v2.RandomResizedCrop(96, scale=(0.2, 1.0))
        for size, label in ((stl_crop.size[0], "STL's, upscaling"), (24, "downscaling")):
            op = RandomResizedCrop(size, scale=stl_crop.scale, ratio=stl_crop.ratio)
            params = {k: v.numpy() for k, v in op.sample(self.batch, self.seed, image_size=(64, 64)).items()}
            boxes = np.round(params["crop"] * 64).astype(int)  # top, left, height, width in pixels
            boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)
            params["crop"] = (boxes / 64.0).astype(np.float32)
            theirs = self.per_image(
                lambda i: self.hwc(
                    stl_crop.transform(
                        self.tensor(self.images, i),
                        dict(top=boxes[i, 0], left=boxes[i, 1], height=boxes[i, 2], width=boxes[i, 3]),
                    )
                    if size == stl_crop.size[0]
                    else self._resized_crop(i, boxes[i], size)
                )
            )
            ours = op.apply(self.images, params).numpy()
            self.row(
                f"crop {size}px default ({label})",
                ours,
                theirs,
                1e-5,
                "box ends on pixel centres (tf.image.crop_and_resize), no antialias; torchvision: box edges on "
                "pixel edges, half-pixel bilinear, antialias on downscale",
                explained=True,
            )
            tv = RandomResizedCrop(size, scale=stl_crop.scale, ratio=stl_crop.ratio, convention="torchvision")
            mine = tv.apply(self.images, params).numpy()
            self.row(f"crop {size}px convention=torchvision", mine, theirs, 1e-5, "")
            # GTSA: torchvision.transforms.RandomResizedCrop on PIL images (PIL's resize, uint8).
            pil = self.per_image(lambda i: self._pil_resized_crop(i, boxes[i], size))
            self.row(
                f"crop {size}px torchvision vs PIL",
                mine,
                pil,
                1.5 * Q,
                "PIL's uint8 resize: fixed-point weights, two passes each rounded to uint8",
            )

    def color(self):
        import torchvision.transforms.functional as F1

        from keras_eqssl.augment import ColorJitter, color

        jitter = self.aligned[1].transforms[0]  # v2.ColorJitter(0.4, 0.4, 0.4, 0.1)
        op = ColorJitter(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        pil_op = ColorJitter(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue, convention="pil")
        params = {k: v.numpy() for k, v in op.sample(self.batch, self.seed).items()}
        factors, order = params["color"], params["color_order"]
        ours = op.apply(self.images, params).numpy()

        def tv_params(i):
            b, c, s, h = (float(v) for v in factors[i])
            idx = self.torch.tensor(order[i], dtype=self.torch.long)
            return dict(fn_idx=idx, brightness_factor=b, contrast_factor=c, saturation_factor=s, hue_factor=h)

        theirs = self.per_image(lambda i: self.hwc(jitter.transform(self.tensor(self.images, i), tv_params(i))))
        self.row("color jitter (v2, float)", ours, theirs, 1e-5, "STL's v2.ColorJitter, fn_idx = color_order")
        # One op at a time, each order being the identity for the others.
        for j, fn in enumerate(("brightness", "contrast", "saturation", "hue")):
            single = dict(params, color=np.where(np.arange(4) == j, factors, [1.0, 1.0, 1.0, 0.0]).astype(np.float32))
            mine = op.apply(self.images, single).numpy()
            ref = self.per_image(
                lambda i: self.hwc(
                    getattr(F1, f"adjust_{fn}")(self.tensor(self.images, i), float(single["color"][i, j]))
                )
            )
            self.row(f"color {fn} (float)", mine, ref, 1e-5, "")
            pil_single = self.per_image(lambda i: self._pil_jitter(i, single["color"][i], [j]))
            self.row(
                f"color {fn} default vs PIL path",
                mine,
                pil_single,
                1e-5,
                "uint8 HSV (hue and saturation in 256 levels) and a hue shift of int(255 h) of 256 levels"
                if fn == "hue"
                else "PIL truncates to uint8"
                + (" and blends with the rounded mean of its L image" if fn == "contrast" else ""),
                explained=True,
            )
            mine_pil = getattr(color, f"pil_adjust_{fn}")(self.images, single["color"][:, j]).numpy()
            self.row(f"color {fn} convention=pil", mine_pil, pil_single, 1e-6, "Pillow's uint8 arithmetic")
        # GTSA (torchvision.transforms.ColorJitter on PIL images): every op rounds to uint8.
        pil_ref = self.per_image(lambda i: self._pil_jitter(i, factors[i], order[i]))
        self.row(
            "color jitter default vs PIL path",
            ours,
            pil_ref,
            1e-5,
            "PIL rounds to uint8 after each op; the hue op's uint8 HSV round trip dominates",
            explained=True,
        )
        self.row("color jitter convention=pil (GTSA)", pil_op.apply(self.images, params).numpy(), pil_ref, 1e-6, "")

    def _pil_jitter(self, i, factors, order):
        import torchvision.transforms.functional as F1

        img = self.pil(i)
        fns = (F1.adjust_brightness, F1.adjust_contrast, F1.adjust_saturation, F1.adjust_hue)
        for j in order:
            img = fns[j](img, float(factors[j]))
        return self.from_pil(img)

    def grayscale(self):
        from keras_eqssl.augment import Grayscale

        gray = self.aligned[2]  # v2.RandomGrayscale(p=0.2)
        op = Grayscale(p=1.0)
        ours = op.apply(self.images, op.sample(self.batch, self.seed)).numpy()
        theirs = self.per_image(
            lambda i: self.hwc(gray.transform(self.tensor(self.images, i), {"num_input_channels": 3}))
        )
        self.row("grayscale (v2, float)", ours, theirs, 1e-6, "weights 0.2989, 0.587, 0.114 on both")
        pil = self.per_image(lambda i: self.from_pil(self.pil(i).convert("L").convert("RGB")))
        self.row(
            "grayscale (PIL convert L)",
            ours,
            pil,
            Q,
            "PIL: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 on uint8, i.e. weights 0.299/0.587/0.114 "
            "rounded to one level",
        )

    def solarize(self):
        import torchvision.transforms.v2 as v2
        from PIL import ImageOps

        from keras_eqssl.augment import Solarize

        op = Solarize(p=1.0, threshold=0.5)
        ours = op.apply(self.images, op.sample(self.batch, self.seed)).numpy()
        tv = v2.RandomSolarize(threshold=0.5, p=1.0)
        theirs = self.per_image(lambda i: self.hwc(tv.transform(self.tensor(self.images, i), {})))
        self.row("solarize 0.5 (v2, float)", ours, theirs, 1e-6, "both invert pixels >= threshold")
        pil = self.per_image(lambda i: self.from_pil(ImageOps.solarize(self.pil(i), threshold=128)))
        self.row("solarize (PIL threshold=128, BYOL)", ours, pil, 1e-6, "uint8 >= 128 <=> x >= 0.5 on uint8 images")
        # Pixels exactly at the threshold: >= on both sides.
        edge = np.full((1, 4, 4, 3), 0.5, np.float32)
        mine = op.apply(edge, {"solarize": np.ones((1, 1), np.float32)}).numpy()
        ref = self.hwc(tv.transform(self.tensor(edge, 0), {}))[None]
        self.row("solarize at the threshold", mine, ref, 1e-6, "x == threshold is inverted by both")

    def flip(self):
        from keras_eqssl.augment import Flip

        op = Flip(p=1.0)
        ours = op.apply(self.images, op.sample(self.batch, self.seed)).numpy()
        flip = self.invariant.transforms[0]  # v2.RandomHorizontalFlip()
        theirs = self.per_image(lambda i: self.hwc(flip.transform(self.tensor(self.images, i), {})))
        self.row("horizontal flip", ours, theirs, 0.0, "")

    def rot90(self):
        from torchvision.transforms.v2 import functional as F

        from keras_eqssl.augment import Rotate90

        op = Rotate90()
        k = np.arange(self.batch, dtype=np.int32)[:, None] % 4
        ours = op.apply(self.images, {"rot90": k}).numpy()
        theirs = self.per_image(lambda i: self.hwc(F.rotate(self.tensor(self.images, i), 90.0 * int(k[i, 0]))))
        self.row("rot90 (F.rotate 90 k)", ours, theirs, 0.0, "k quarter turns counter-clockwise on both")
        pil = self.per_image(lambda i: self.from_pil(self.pil(i).rotate(90.0 * int(k[i, 0]))))
        self.row("rot90 (PIL rotate, GTSA)", ours, pil, 0.0, "")

    def rotation(self):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        from keras_eqssl.augment import Rotation

        angles = np.array([[-40.0], [-17.3], [5.0], [23.7], [45.0], [90.0]], np.float32)[: self.batch]
        for mode in ("bilinear", "nearest"):
            interp = InterpolationMode.BILINEAR if mode == "bilinear" else InterpolationMode.NEAREST
            theirs = self.per_image(
                lambda i: self.hwc(F.rotate(self.tensor(self.images, i), float(angles[i, 0]), interpolation=interp))
            )
            ours = Rotation(45.0).apply(self.images, {"rotation": angles}).numpy()
            if mode == "bilinear":
                self.row("rotation (bilinear)", ours, theirs, 1e-5, "same centre and direction (counter-clockwise)")
                continue
            self.row(
                "rotation default vs tv nearest",
                ours,
                theirs,
                1e-5,
                "torchvision's RandomRotation / rotate default is nearest; ours bilinear",
                explained=True,
            )
            mine = Rotation(45.0, interpolation="nearest").apply(self.images, {"rotation": angles}).numpy()
            self.row("rotation interpolation=nearest", mine, theirs, 1e-6, "")

    def blur(self):
        from PIL import ImageFilter

        from keras_eqssl.augment import GaussianBlur

        blur = self.invariant.transforms[1].transforms[0]  # v2.GaussianBlur(kernel_size=9, sigma=(0.1, 2.0))
        sigma = np.array([[0.1], [0.5], [0.9], [1.3], [1.7], [2.0]], np.float32)[: self.batch]
        theirs = self.per_image(
            lambda i: self.hwc(blur.transform(self.tensor(self.images, i), {"sigma": [float(sigma[i, 0])] * 2}))
        )
        op = GaussianBlur(sigma=blur.sigma, kernel_size=blur.kernel_size[0])
        self.row("blur kernel 9 (STL v2)", op.apply(self.images, {"blur": sigma}).numpy(), theirs, 1e-5, "")
        default = GaussianBlur(sigma=blur.sigma)
        self.row(
            "blur default kernel vs STL's 9",
            default.apply(self.images, {"blur": sigma}).numpy(),
            theirs,
            1e-5,
            f"default kernel: 10% of the side ({default.kernel_size_for(self.images)} taps at 64 px)",
            explained=True,
        )
        pil = self.per_image(
            lambda i: self.from_pil(self.pil(i).filter(ImageFilter.GaussianBlur(radius=float(sigma[i, 0]))))
        )
        self.row(
            "blur default vs PIL (GTSA)",
            default.apply(self.images, {"blur": sigma}).numpy(),
            pil,
            8 * Q,
            "PIL: three box blurs (an approximate Gaussian, not truncated), symmetric padding, uint8",
            explained=True,
        )
        matching = GaussianBlur(sigma=blur.sigma, truncate=3.0, padding="symmetric")
        self.row(
            "blur truncate=3 symmetric vs PIL",
            matching.apply(self.images, {"blur": sigma}).numpy(),
            pil,
            8 * Q,
            f"{matching.kernel_size_for(self.images)} taps; what is left is PIL's box approximation and its "
            "uint8 rounding per pass (largest on the noise images)",
        )
        # The 32 px case: the default keeps 3 taps, which truncates sigma = 2 heavily.
        small = self.images[:, 16:48, 16:48]
        pil_small = self.per_image(
            lambda i: self.from_pil(self.pil(i, small).filter(ImageFilter.GaussianBlur(radius=float(sigma[i, 0]))))
        )
        for label, op in (("default", default), ("truncate=3 symmetric", matching)):
            taps = op.kernel_size_for(small)
            self.row(
                f"blur {label} vs PIL, 32 px",
                op.apply(small, {"blur": sigma}).numpy(),
                pil_small,
                8 * Q,
                f"{taps} taps",
                explained=label == "default",
            )

    # torchvision's AugMix op names and the magnitude each takes from our signed fraction m.
    AUGMIX_TV = {
        "autocontrast": ("AutoContrast", lambda m, w: 0.0),
        "equalize": ("Equalize", lambda m, w: 0.0),
        "posterize": ("Posterize", lambda m, w: float(4 - int(np.floor(4 * abs(m))))),
        "rotate": ("Rotate", lambda m, w: 30.0 * m),
        "solarize": ("Solarize", lambda m, w: 1.0 - abs(m)),
        "shear_x": ("ShearX", lambda m, w: 0.3 * m),
        "shear_y": ("ShearY", lambda m, w: 0.3 * m),
        "translate_x": ("TranslateX", lambda m, w: m * w / 3.0),
        "translate_y": ("TranslateY", lambda m, w: m * w / 3.0),
        "brightness": ("Brightness", lambda m, w: 0.9 * m),
        "color": ("Color", lambda m, w: 0.9 * m),
        "contrast": ("Contrast", lambda m, w: 0.9 * m),
        "sharpness": ("Sharpness", lambda m, w: 0.9 * m),
    }

    def _tv_augmix_op(self, aug, img, name, m):
        """torchvision's AugMix op `name` on one CHW image (float in [0, 1] or uint8) at our magnitude m."""
        from torchvision.transforms import InterpolationMode

        tv_name, magnitude = self.AUGMIX_TV[name]
        return aug._apply_image_or_video_transform(
            img, tv_name, magnitude(m, img.shape[-1]), interpolation=InterpolationMode.BILINEAR, fill=aug._fill
        )

    @staticmethod
    def _one_op_params(batch, j, mags):
        return {
            "augmix_ops": np.full((batch, 1, 1), j, np.int32),
            "augmix_mags": np.asarray(mags, np.float32)[:, None, None],
            "augmix_weights": np.ones((batch, 1), np.float32),
            "augmix_mix": np.ones((batch, 1), np.float32),
        }

    def augmix(self):
        import torchvision.transforms.v2 as v2

        from keras_eqssl.augment import AugMix
        from keras_eqssl.augment.augmix import AUGMIX_ALL_OPS

        tv = v2.AugMix()  # severity 3, width 3, depth -1, alpha 1, all_ops=True, bilinear
        ours_ops = AugMix(all_ops=True).op_names
        same = sorted(self.AUGMIX_TV[n][0] for n in ours_ops) == sorted(tv._AUGMENTATION_SPACE)
        self.cmp.record(
            "augment",
            "augmix op list, all_ops=True",
            0.0 if same else 1.0,
            0.0 if same else 1.0,
            0.0,
            f"torchvision AugMix() (all_ops={tv.all_ops}): {len(tv._AUGMENTATION_SPACE)} ops = ours with "
            f"all_ops=True; our default has the paper's {len(ours_ops) - 4} (no brightness, color, contrast, "
            "sharpness)",
        )
        op = AugMix(width=1, depth=1, all_ops=True, whole_pixels=True)
        floats = self.tensor(self.images)
        uint8 = self.torch.from_numpy(self.uint8.transpose(0, 3, 1, 2).copy())
        mags = np.array([0.3, -0.25, 0.1, -0.05, 0.2, -0.3], np.float32)[: self.batch]
        for j, name in enumerate(AUGMIX_ALL_OPS):
            ours = op.apply(self.images, self._one_op_params(self.batch, j, mags)).numpy()
            if name == "posterize":  # torchvision's float posterize is another formula; AugMix takes uint8
                ref = lambda i: self._tv_augmix_op(tv, uint8[i], name, float(mags[i])).float() / 255.0  # noqa: E731
                note = "on uint8 (torchvision's AugMix input); its float posterize floors x * 2^bits instead"
            else:
                ref = lambda i: self._tv_augmix_op(tv, floats[i], name, float(mags[i]))  # noqa: E731
                note = "float path" + (", whole pixels (whole_pixels=True)" if name.startswith("translate") else "")
            theirs = self.per_image(lambda i: self.hwc(ref(i)))
            self.row(f"augmix {name}", ours, theirs, 1e-5, note)
            if name.startswith("translate"):
                default = AugMix(width=1, depth=1).apply(self.images, self._one_op_params(self.batch, j, mags))
                self.row(
                    f"augmix {name} default",
                    default.numpy(),
                    theirs,
                    1e-5,
                    "sub-pixel shift m W / 3 (bilinear); the paper and torchvision truncate it to whole pixels",
                    explained=True,
                )
        # One whole AugMix: sampled chains (depth 1-3, width 3), weights and mix, replayed op by op in torchvision.
        full = AugMix(all_ops=True, whole_pixels=True)
        params = {k: v.numpy() for k, v in full.sample(self.batch, self.seed).items()}
        ours = full.apply(self.images, params).numpy()

        def replay(i, images):
            mix = (1.0 - float(params["augmix_mix"][i, 0])) * images[i]
            for c in range(full.width):
                chain = images[i]
                for d in range(full.steps):
                    k = int(params["augmix_ops"][i, c, d])
                    if k != full.no_op:
                        chain = self._tv_augmix_op(tv, chain, full.op_names[k], float(params["augmix_mags"][i, c, d]))
                weight = float(params["augmix_mix"][i, 0]) * float(params["augmix_weights"][i, c])
                mix = mix + weight * chain.float()
            return mix

        theirs = self.per_image(lambda i: self.hwc(replay(i, floats)))
        self.row("augmix whole (float path)", ours, theirs, 1e-5, "torchvision's mixing loop on our chains and weights")
        theirs_u8 = self.per_image(lambda i: self.hwc(replay(i, uint8).to(self.torch.uint8)).astype(np.float32) / 255)
        self.row(
            "augmix whole (uint8, torchvision)",
            ours,
            theirs_u8,
            3 * Q,
            "torchvision's AugMix on uint8 rounds each op's output and truncates the mix to uint8: about 2 levels",
            explained=True,
        )

    def _pil_resized_crop(self, i, box, size):
        import torchvision.transforms.functional as F1

        top, left, h, w = (int(v) for v in box)
        return self.from_pil(F1.resized_crop(self.pil(i), top, left, h, w, [size, size]))

    def _resized_crop(self, i, box, size):
        from torchvision.transforms.v2 import functional as F

        top, left, h, w = (int(v) for v in box)
        return F.resized_crop(self.tensor(self.images, i), top, left, h, w, [size, size], antialias=True)


def main() -> int:
    p = common.parser(__doc__.split("\n")[0])
    args = p.parse_args()

    import torch  # noqa: F401

    (dataset,) = common.import_official(args.official, "dataset")
    _, aligned, invariant = dataset.build_transforms(mean=[0.5] * 3, std=[0.5] * 3)
    cmp = common.Comparison("augment", args.official, "jaemyung-u/stl (torchvision 0.29, Pillow)", COMMAND)
    common.seed_everything(args.seed)
    runner = Runner(cmp, (aligned, invariant), args.seed)
    for step in (
        runner.crop,
        runner.color,
        runner.grayscale,
        runner.solarize,
        runner.flip,
        runner.rot90,
        runner.rotation,
        runner.blur,
        runner.augmix,
    ):
        step()
    return cmp.finish(args.json)


if __name__ == "__main__":
    raise SystemExit(main())
