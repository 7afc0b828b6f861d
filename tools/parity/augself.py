"""AugSelf against its official code: the ResNet, SimCLR, the AugSelf targets and heads, every loss term, one SGD step.

Written against hankook/AugSelf at commit c131db6 (`models.py` `load_backbone`, `load_mlp`,
`load_ss_predictor`; `trainers.py` `SSObjective` and the `simclr` training step; `transforms.py`
`extract_diff`; `pretrain.py`'s `simclr` recipe). The official model is built as `pretrain.py
--framework simclr --model resnet18 --ss-crop 1.0 --ss-color 1.0` builds it (torchvision ResNet-18
with the ImageNet stem, projector 512-512-128, one 1024-512-512-4 head per augmentation) and its
training step is run as it is, on a batch of 8 pairs of 32 px views. BatchNorm parameters and
statistics are randomised first (AugSelf zero-initialises the last BN of every residual branch,
which would hide errors in those branches). The weights go into ours through `load_resnet_weights`
and `load_mlp_weights`, and ours is `PairModel(SimCLR(temperature 0.2), ParameterPrediction(...))`
with the options `configs/augself.py` sets: `mode="difference"`, `heads="per_target"`,
`symmetric=True`, `crop_target="center"`, `target_scales` = the jitter ranges' widths,
`standardize=False`, `output_activation="tanh"`, `features="all"` and no split.

The views and their parameters come from our SimCLR policy (crop scale 0.2-1, flip, jitter 0.4,
0.4, 0.4, 0.1 with p 0.8, grayscale, blur); both sides see the same pixels, and the official side
the same parameters, converted to its layout:
- crop box (y0, x0, h, w), normalised -> AugSelf's `RandomResizedCrop` output `[i/H, j/W, h/H, w/W]`
  (the same numbers);
- flip (B, 1) -> `K.RandomHorizontalFlip._params["batch_prob"]` (bool);
- color_applied, color (b, c, s, h factors) -> `ColorJitter._params`: `batch_prob` and the
  factors of the images it ran on; the jitter ranges as kornia 0.4.1 stores them
  (`brightness = [1 - 0.4, 1 + 0.4]`, ..., `hue = [-0.1, 0.1]`), which `_extract_w` reads.
The official transforms replay these records (their forward passes the images through; `K.Normalize`
runs), so the official `extract_diff` builds its targets from our parameters. Its `GaussianBlur`
cannot be built with current kornia and its difference is not predicted here (`--ss-blur` off), so
it is left out of the replayed chain. `ignite` (not needed for one step) is stubbed.

Rows: augment (the targets, both orders), backbone (pooled, eval and train mode), loss (SimCLR,
each AugSelf term, the total), gradients of every parameter, and the weights after one step of
`pretrain.py`'s optimizer: SGD, lr = 0.03 x batch / 256 (the cosine's value at step 0), momentum
0.9, weight decay 5e-4 as an L2 term on every parameter (`CoupledSGD`).

    python tools/parity/augself.py --official <checkout of hankook/AugSelf> --json docs/parity/augself.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import types

import common
import numpy as np
from variable_map import variable_map

REPOSITORY = "hankook/AugSelf"
COMMAND = "python tools/parity/augself.py --official <checkout of hankook/AugSelf> --json docs/parity/augself.json"
BATCH, SIZE, SOURCE = 8, 32, 48
STL10_MEAN, STL10_STD = (0.43, 0.42, 0.39), (0.27, 0.26, 0.27)  # datasets.py, stl10
TEMPERATURE = 0.2  # trainers.simclr
BASE_LR, WD, MOMENTUM = 0.03, 5e-4, 0.9  # pretrain.py defaults
JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)


def stub_missing_modules() -> None:
    """`ignite` (the training loop; one step needs only `Engine(fn)`) and kornia 0.4's `augmentation.functional`."""
    import kornia.augmentation  # noqa: F401

    class Engine:
        def __init__(self, process_function):
            self.process_function = process_function

    ignite = types.ModuleType("ignite")
    engine = types.ModuleType("ignite.engine")
    distributed = types.ModuleType("ignite.distributed")
    engine.Engine, engine.Events = Engine, None
    ignite.engine, ignite.distributed = engine, distributed
    sys.modules.setdefault("ignite", ignite)
    sys.modules.setdefault("ignite.engine", engine)
    sys.modules.setdefault("ignite.distributed", distributed)
    sys.modules.setdefault("kornia.augmentation.functional", types.ModuleType("kornia.augmentation.functional"))


def replayed_transforms(transforms, params: dict):
    """AugSelf's per-view kornia chain whose random ops replay our recorded parameters (and pass images through)."""
    import kornia.augmentation as K
    import torch

    from keras_eqssl.augment.color import ColorJitter

    flip = K.RandomHorizontalFlip()
    flip._params = {"batch_prob": torch.from_numpy(np.asarray(params["flip"])[:, 0] > 0.5)}
    jitter = transforms.ColorJitter(**JITTER, p=0.8)
    for name, (lo, hi) in zip(("brightness", "contrast", "saturation", "hue"), ColorJitter(**JITTER).ranges):
        setattr(jitter, name, torch.tensor([lo, hi]))  # kornia 0.4.1's stored ranges, read by `_extract_w`
    applied = np.asarray(params["color_applied"])[:, 0] > 0.5
    factors = np.asarray(params["color"])[applied]
    jitter._params = {"batch_prob": torch.from_numpy(applied)}
    for j, name in enumerate(("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")):
        jitter._params[name] = torch.from_numpy(np.ascontiguousarray(factors[:, j]))
    gray = K.RandomGrayscale(p=0.2)
    for m in (flip, jitter, gray):
        m.forward = lambda x: x  # the views already carry these ops (applied by our policy)
    normalize = K.Normalize(mean=torch.tensor(STL10_MEAN), std=torch.tensor(STL10_STD))
    return torch.nn.Sequential(flip, jitter, gray, normalize)


def check_config(objective, invariance) -> None:
    """configs/augself.py must build the objective this tool compares (its options, not the CPU-scale widths)."""
    import os

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from configs import augself as augself_config
    from keras_eqssl.methods import ParameterPrediction

    config = augself_config.get_config()
    built = ParameterPrediction.from_config_section(config.model.params, config).get_config()
    compared = objective.get_config()
    keys = ("mode", "targets", "features", "hidden_units", "heads", "symmetric", "crop_target", "standardize",
            "output_activation", "reduction", "weight")  # fmt: skip
    wrong = {k: (built[k], compared[k]) for k in keys if built[k] != compared[k]}
    scales = np.asarray(built["target_scales"]["color"]) - np.asarray(compared["target_scales"]["color"])
    if wrong or np.abs(scales).max() > 1e-6 or config.model.invariance.simclr.temperature != invariance.temperature:
        raise SystemExit(f"configs/augself.py differs from the compared settings: {wrong}, scales {scales}")
    if tuple(config.model.split) != (0, 0):
        raise SystemExit("configs/augself.py should train without a split (AugSelf reads the whole representation)")


def main() -> int:
    parser = common.parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()

    import torch

    stub_missing_modules()  # imports kornia (and torchvision) before TensorFlow: triton segfaults after it
    models, trainers, transforms = common.import_official(args.official, "models", "trainers", "transforms")

    import tensorflow as tf

    from keras_eqssl.augment.policies.pairs import simclr as simclr_policy
    from keras_eqssl.methods import PairModel, ParameterPrediction, SimCLR
    from keras_eqssl.methods.coupled_sgd import CoupledSGD
    from keras_eqssl.methods.objectives.parameter_prediction import jitter_widths
    from keras_eqssl.nn import ResNetBackbone, load_mlp_weights, load_resnet_weights

    common.seed_everything(args.seed)
    cmp = common.Comparison("augself", args.official, REPOSITORY, COMMAND)

    # --- the batch: our SimCLR policy's views and parameters ----------------------------------------
    rng = np.random.default_rng(args.seed)
    source = (rng.random((BATCH, SOURCE, SOURCE, 3)) * 255).astype(np.uint8)
    policy = simclr_policy(SIZE, scale=(0.2, 1.0), jitter=JITTER, jitter_p=0.8, grayscale_p=0.2, blur_p=0.5)
    views, params = policy(tf.constant(source), seed=args.seed + 7)
    views = {v: np.asarray(views[v], np.float32) for v in views}
    params = {v: {k: np.asarray(t) for k, t in p.items()} for v, p in params.items()}
    flips = [int(params[v]["flip"].sum()) for v in ("v1", "v2")]
    jittered = [int(params[v]["color_applied"].sum()) for v in ("v1", "v2")]
    print(f"batch of {BATCH}: flipped {flips}, jittered {jittered} (per view)")
    batch = {"views": {v: tf.constant(views[v]) for v in views}, "params": params}
    t1, t2 = replayed_transforms(transforms, params["v1"]), replayed_transforms(transforms, params["v2"])
    x1, x2 = common.nchw(views["v1"]), common.nchw(views["v2"])
    w1, w2 = torch.from_numpy(params["v1"]["crop"].copy()), torch.from_numpy(params["v2"]["crop"].copy())
    official_batch = (((x1, w1), (x2, w2)), torch.zeros(BATCH))

    # --- the official model (pretrain.py simclr), its weights into ours ------------------------------
    backbone = models.load_backbone(argparse.Namespace(model="resnet18"))
    features = 512
    projector = models.load_mlp(features, features, 128, num_layers=2, last_bn=False)
    ss_objective = trainers.SSObjective(crop=1.0, color=1.0)
    ss_predictor = models.load_ss_predictor(features, ss_objective)
    modules = {"backbone": backbone, "projector": projector, **{f"ss.{k}": v for k, v in ss_predictor.items()}}
    official = torch.nn.ModuleDict({k.replace(".", "_"): m for k, m in modules.items()})
    common.randomise_batch_norms(official, args.seed)
    initial = copy.deepcopy(official.state_dict())
    # copies: numpy_state_dict's arrays share memory with the torch tensors the official step updates in place
    sd = {f"{name}.{k}": v.copy() for name, m in modules.items() for k, v in common.numpy_state_dict(m).items()}
    torch_params = {f"{name}.{k}": p for name, m in modules.items() for k, p in m.named_parameters()}
    # AugSelf's hidden Linear layers have no bias (a BN follows); ours carry one, loaded as zeros.
    inert = {}
    for name in ("projector", "ss.crop", "ss.color"):
        for k, v in list(sd.items()):
            if k.startswith(name + ".") and k.endswith(".weight") and v.ndim == 2 and k[:-7] + ".bias" not in sd:
                inert[k[:-7] + ".bias"] = np.zeros(v.shape[0], np.float32)
    sd.update(inert)

    ours_backbone = ResNetBackbone([2, 2, 2, 2], stem="imagenet")
    invariance = SimCLR(projector_units=[features, 128], temperature=TEMPERATURE)
    objective = ParameterPrediction(
        targets=("crop", "color"), mode="difference", hidden_units=(512, 512), features="all",
        standardize=False, heads="per_target", symmetric=True, crop_target="center",
        target_scales={"color": jitter_widths(JITTER)}, output_activation="tanh", reduction="sum",
    )  # fmt: skip
    model = PairModel(ours_backbone, invariance, objectives=[objective], split=None, image_size=SIZE,
                      param_specs=policy.param_specs(), mean=STL10_MEAN, std=STL10_STD)  # fmt: skip
    model.compute_losses(batch, training=False)  # builds every layer
    heads = dict(zip(objective.specs, objective.target_heads))
    check_config(objective, invariance)

    def load_all(state):
        load_resnet_weights(ours_backbone, state, "backbone.")
        load_mlp_weights(invariance.projector, state, "projector.")
        for key, head in heads.items():
            load_mlp_weights(head, state, f"ss.{key}.")

    names = variable_map(load_all, sd, model.variables)
    trainable = {n: v for n, v in names.items() if any(v is t for t in model.trainable_variables)}
    missing = sorted(n for n in torch_params if n not in trainable)
    if missing:
        raise SystemExit(f"official parameters with no Keras variable: {missing}")

    # --- targets: extract_diff on the replayed parameters, both orders --------------------------------
    diff1 = transforms.extract_diff(t1, t2, w1.clone(), w2.clone())
    diff2 = transforms.extract_diff(t2, t1, w2.clone(), w1.clone())
    ours12, ours21 = objective._targets(batch), objective._targets(batch, order=("v2", "v1"))
    for key, what in (("crop", "centre (x mirrored by the first view's flip), size"), ("color", "jitter / range")):
        ours = np.concatenate([np.asarray(ours12[key]), np.asarray(ours21[key])])
        theirs = torch.cat([diff1[key], diff2[key]]).numpy()
        cmp.compare("augment", f"target {key}: {what}", ours, theirs, common.LOSS_TOL, note="both orders stacked")
    box = params["v1"]["crop"] - params["v2"]["crop"]
    cmp.compare("augment", "target crop, our default (box corners)", box, diff1["crop"], common.LOSS_TOL,
                note="explained: crop_target='box' regresses the boxes' (y0, x0, h, w) difference, no flip "
                "correction; configs/augself.py sets 'center'", explained=True)  # fmt: skip

    # --- backbone ------------------------------------------------------------------------------------
    x1n = t1(x1)
    x1n_ours = (views["v1"] - np.array(STL10_MEAN, np.float32)) / np.array(STL10_STD, np.float32)
    cmp.compare("augment", "normalised view (K.Normalize)", x1n_ours, x1n.permute(0, 2, 3, 1), common.OUTPUT_TOL)
    probe = copy.deepcopy(backbone)
    with torch.no_grad():
        probe.eval()
        theirs_eval = probe(x1n)
        probe.train()
        theirs_train = probe(x1n)
    cmp.compare("backbone", "pooled, eval (running stats)", ours_backbone(x1n_ours, training=False)["pooled"],
                theirs_eval, common.OUTPUT_TOL)  # fmt: skip
    cmp.compare("backbone", "pooled, train (batch stats)", ours_backbone(x1n_ours, training=True)["pooled"],
                theirs_train, common.OUTPUT_TOL)  # fmt: skip
    load_all(sd)

    # --- one official training step (trainers.simclr), as pretrain.py builds it -----------------------
    official.load_state_dict(initial)
    lr = BASE_LR * BATCH / 256  # pretrain.py: args.lr; CosineAnnealingLR's value before its first epoch ends
    sgd = torch.optim.SGD(list(torch_params.values()), lr=lr, weight_decay=WD, momentum=MOMENTUM)
    engine = trainers.simclr(backbone=backbone, projector=projector, ss_predictor=ss_predictor, t1=t1, t2=t2,
                             optimizers=[sgd], device="cpu", ss_objective=ss_objective, T=TEMPERATURE)  # fmt: skip
    out = engine.process_function(engine, official_batch)
    theirs_grads = {n: p.grad.detach().numpy().copy() for n, p in torch_params.items()}
    theirs_after = {n: p.detach().numpy().copy() for n, p in torch_params.items()}

    def our_terms():
        return model.compute_losses(batch, training=True)

    load_all(sd)
    total, terms = our_terms()
    for name, ours, theirs in (
        ("SimCLR NT-Xent (tau 0.2)", terms["simclr"], out["loss"]),
        ("ss/crop: mse(tanh(h_crop), d_crop)", terms["params_crop"], out["ss/crop"]),
        ("ss/color: mse(tanh(h_color), d_color)", terms["params_color"], out["ss/color"]),
        ("ss/total (1.0 crop + 1.0 color)", terms["params"], out["ss/total"]),
        ("total: loss + ss/total", total, out["loss"] + out["ss/total"]),
    ):
        cmp.compare("loss", name, ours, theirs, common.LOSS_TOL)

    load_all(sd)
    variables = list(trainable.values())
    grads = dict(zip(trainable, common.keras_gradients(lambda: our_terms()[0], variables)))
    cmp.compare_many("gradients", [(n, common.torch_layout(grads[n], theirs_grads[n].shape), theirs_grads[n])
                                   for n in torch_params], common.GRAD_TOL)  # fmt: skip
    cmp.compare("gradients", "ours only: hidden Dense biases before BN", np.concatenate([grads[n] for n in inert]),
                np.zeros(sum(v.size for v in inert.values())), common.GRAD_TOL,
                note="AugSelf's hidden Linear layers have no bias; ours are zero and BN cancels their gradient")  # fmt: skip

    load_all(sd)
    optimizer = CoupledSGD(lr, momentum=MOMENTUM, weight_decay=WD)
    optimizer.apply_gradients([(grads[n], v) for n, v in trainable.items()])
    cmp.compare_many("step", [(n, common.torch_layout(np.asarray(trainable[n]), theirs_after[n].shape),
                               theirs_after[n]) for n in torch_params], common.GRAD_TOL,
                     note=f"SGD lr {lr:g} (0.03 x {BATCH} / 256), momentum 0.9, L2 5e-4 on every parameter "
                     "(CoupledSGD)")  # fmt: skip
    return cmp.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
