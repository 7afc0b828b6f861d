"""The default config, and the schema every config file is checked against.

Every key a config may have is here, with its default; a config file starts from `get_config()`
and changes what it needs. `keras-eqssl-train` with no `--config` runs this one: VICReg plus the
cross-attention reconstruction branch, a small ResNet-18 (cifar stem, width 1/4, 32 px), 600 steps,
on a 360-object mini-3DIEBench rendered into the cache on first use (pairs = two renders of one
object, as SIE). `docs/main_job.md` says why these settings.

    keras-eqssl-train                                # embedded default
    keras-eqssl-train --config=configs/simclr_recon.py --config.data.source=skimage_photos
    keras-eqssl-train --config=configs/byol.py --config.train.steps=200 --config.optim.lr=3e-4

The recipes of the methods (`method_config`, `gtsa_config`) are in `configs/common.py`.
"""

import ml_collections


def registered_objectives() -> dict:
    """short_name -> Objective class, every objective imported so far (the built-in ones at least)."""
    from keras_eqssl.methods import OBJECTIVES

    return dict(OBJECTIVES)


def registered_invariances() -> dict:
    """short_name -> Invariance class, every invariance loss imported so far (the built-in ones at least)."""
    from keras_eqssl.methods import INVARIANCES

    return dict(INVARIANCES)


def registered_model_kinds() -> dict:
    """kind -> SSLModel class (`config.model.method`), every model kind imported so far."""
    from keras_eqssl.methods import MODEL_KINDS

    return dict(MODEL_KINDS)


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.workdir = "runs/default"

    c.data = ml_collections.ConfigDict()
    c.data.source = "threedie"  # threedie | skimage_photos | image_folder | tfds | fashion_mnist
    c.data.root = ""  # image_folder: one subfolder per class, or images directly in it (unlabelled)
    c.data.tfds_name = ""  # tfds: a prepared image-classification dataset, e.g. "cifar10"
    c.data.data_dir = ""  # tfds: its data_dir ("" = tfds default)
    # tfds: keep only these classes, comma-separated label names (e.g. ImageNet wnids: ImageNet-100), labelled
    # 0..K-1 in the dataset's order; "" = all
    c.data.tfds_classes = ""
    c.data.split = "train"
    c.data.photos = "all"  # skimage_photos: all | train | test (test = 4 photos held out of train)
    c.data.image_size = 128  # side of the source images handed to the policy
    c.data.num_images = 2048  # images per epoch drawn from the source
    c.data.batch_size = 64
    # image_folder / threedie root: skip unreadable files (a warning counts them) instead of stopping;
    # image_folder: decode every image once before training, naming damaged ones (slow, sequential);
    # a folder of at most `decode_check_limit` images is checked so anyway (0: only with check_decode)
    c.data.skip_bad = False
    c.data.check_decode = False
    c.data.decode_check_limit = 2000
    # threedie: a 3DIEBench-format root (`root`), or "" for a procedural mini-3DIEBench rendered
    # once into `cache_dir` with these settings. Pairs are two renders of one object; the
    # augmentation policy is applied to them only when `augment_renders`; otherwise each render
    # only gets an in-plane rotation ~ U(-rotation, rotation) degrees, drawn per view (0 = none, as SIE).
    c.data.threedie = ml_collections.ConfigDict(
        dict(
            root="",
            cache_dir="~/.cache/keras_eqssl",
            num_objects=360,
            views=12,
            render_size=32,
            augment_renders=False,
            rotation=45.0,  # the invariant part learns to drop it, the reconstruction keeps it (docs/main_job.md)
        )
    )

    a = c.augment = ml_collections.ConfigDict()
    a.policy = "simclr"  # simclr | byol | stl | gtsa | essl
    a.size = 32  # side of the (global) views
    a.crop = ml_collections.ConfigDict(dict(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)))
    a.flip = ml_collections.ConfigDict(dict(p=0.5))
    a.jitter = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8))
    a.grayscale = ml_collections.ConfigDict(dict(p=0.2))
    a.blur = ml_collections.ConfigDict(dict(sigma=(0.1, 2.0), p=0.5))
    # Rotation ~ U(-degrees, degrees) and shift ~ U(-pixels, pixels) after the crop (0 = off; the
    # flagship paper's combined augmentations use 45 degrees and 10 px at 224 px).
    a.rotation = ml_collections.ConfigDict(dict(degrees=0.0))
    a.translation = ml_collections.ConfigDict(dict(pixels=0.0))
    a.byol = ml_collections.ConfigDict(dict(blur_p=(1.0, 0.1), solarize_p=(0.0, 0.2)))
    a.stl = ml_collections.ConfigDict(dict(augmix=False))
    a.augmix = ml_collections.ConfigDict(dict(severity=3, width=3, depth=-1, alpha=1.0))
    a.gtsa = ml_collections.ConfigDict(
        dict(
            local_size=32,
            num_local=4,
            global_scale=(0.3, 1.0),
            local_scale=(0.1, 0.3),
            min_overlap_global=0.02,
            min_overlap_local=0.01,
            rotate=True,  # each crop turned by k * 90 degrees (False: the DINO-like baseline's crops)
            # Pillow's pixel arithmetic, as GTSA's code (torchvision crop convention, uint8 jitter, untruncated
            # blur): docs/parity.md#augmentations; off by default: the crops are 4.5x slower
            pil_ops=False,
        )
    )
    # chain=True: the rotated crop also gets the view chain's flip, jitter and grayscale (no blur), as E-SSL's CIFAR code
    a.essl = ml_collections.ConfigDict(dict(size=32, scale=(0.05, 0.14), chain=False))

    m = c.model = ml_collections.ConfigDict()
    # A kind of keras_eqssl.methods.MODEL_KINDS: pair (PairModel: invariance + objectives) | teacher_student
    # (TeacherStudentModel: a student and its EMA teacher on multi-crops, with GTSA's and DINO's parts)
    m.method = "pair"
    m.backbone = "resnet18"  # see keras_eqssl.nn.available_backbones(), or "keras_hub:<class | preset | directory>"
    # keras_hub backbones: the class's constructor arguments (or from_preset's, e.g. load_weights=False)
    m.keras_hub = ml_collections.ConfigDict()
    m.stem = "cifar"  # ResNets: imagenet | cifar | sie
    m.width = 0.25  # channel multiplier (1.0 = the paper's width)
    # ResNets: each block's last BN starts with gamma 0 (torchvision's zero_init_residual); auto = on for the sie stem
    m.zero_init_residual = "auto"  # auto | on | off
    m.drop_path_rate = 0.0  # ViTs: stochastic depth, timm's per-block rule (GTSA's and DINO's student: 0.1)
    # The per-channel (x - mean) / std of the input: auto (the renders' statistics on threedie, else
    # ImageNet's) | imagenet | stl10 (the official STL code's STL10 statistics)
    m.normalization = "auto"
    m.split = (64, 64)  # (d_inv, d_equi): first d_inv channels invariant, next d_equi equivariant; (0, 0) = no split
    # The invariance loss of the pair model: `name` picks one of keras_eqssl.methods.INVARIANCES, and each
    # has a section built from its constructor's arguments with its own defaults, e.g. model.invariance.vicreg
    # (projector_units, sim_weight, std_weight, cov_weight, projector_last_bias) or model.invariance.simclr
    # (projector_units, temperature, negatives, projector_last_bn, projector_last_bias). Units are written
    # "512-512-512" (VICReg's --mlp format; "" = no projector).
    m.invariance = ml_collections.ConfigDict({"name": "vicreg"})
    for name, loss in registered_invariances().items():
        m.invariance[name] = ml_collections.ConfigDict(loss.config_section())
    m.sync_bn = True  # synchronised BatchNorm when training on several replicas
    m.fused_bn = (
        True  # ResNets: unsynchronised BNs train through TF's fused kernel (1.2x faster in float32, 1.5x in bf16)
    )
    # One section per registered objective (keras_eqssl.methods.OBJECTIVES), built from its
    # constructor's arguments: `enabled` plus every argument with its default, e.g.
    # model.recon (cross-attention reconstruction), model.params (CIPER / AugSelf), model.stl,
    # model.essl, model.sie. The main job turns the reconstruction branch on.
    for name, objective in registered_objectives().items():
        m[name] = ml_collections.ConfigDict(objective.config_section())
    m.recon.enabled = True
    # One section per model kind with settings of its own (keras_eqssl.methods.MODEL_KINDS), `model.<kind>`.
    for kind, model in registered_model_kinds().items():
        if model.config_section():
            m[kind] = ml_collections.ConfigDict(model.config_section())

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adamw"  # adam | adamw | sgd | lamb
    c.optim.lr = 1e-3
    c.optim.weight_decay = 1e-6
    # adam and adamw follow torch.optim.Adam / AdamW (eps 1e-8 after the bias correction). "coupled" adds
    # wd * w to the gradient: sgd = torch.optim.SGD (STL's recipe: CoupledSGD), adam = torch.optim.Adam (SIE's:
    # TorchAdam). "decoupled" shrinks w by lr * wd * w outside the moments: adamw = torch.optim.AdamW, sgd =
    # Keras SGD; adam then has no weight decay.
    c.optim.weight_decay_mode = "decoupled"
    c.optim.weight_decay_end = -1.0  # adamw: >= 0 = cosine from weight_decay to this over the run (DINO, GTSA)
    c.optim.decay_matrices_only = False  # adamw: no weight decay on biases and norms (DINO, GTSA)
    c.optim.clipnorm = 0.0  # > 0: clip each variable's gradient to this norm (GTSA: 3.0)
    c.optim.schedule = "cosine"  # constant | cosine
    c.optim.warmup_steps = 0

    c.train = ml_collections.ConfigDict()
    c.train.steps = 600  # optimizer steps (batches)
    c.train.checkpoint_every = 100  # steps; also the length of a Keras "epoch". Must divide steps (or be >= steps)
    c.train.log_every = 10  # TensorBoard scalars every N steps
    c.train.image_every = 100  # reconstruction images in TensorBoard every N steps (0 = never)
    # Collapse monitors (keras_eqssl.methods.collapse.CollapseMonitor), every log_every steps on a fixed
    # batch: the L2-normalised embedding's per-dimension std and its effective rank, in the progress bar and
    # TensorBoard; a warning when std < collapse_std_fraction / sqrt(dim) or effective rank <
    # collapse_rank_fraction * min(batch, dim).
    c.train.collapse_monitor = True
    c.train.collapse_std_fraction = 0.02
    c.train.collapse_rank_fraction = 0.02
    c.train.resume = True  # continue from workdir/checkpoints if a checkpoint is there
    c.train.overwrite = False  # with resume=False: delete the workdir's checkpoints (else refuse to start)
    c.train.precision = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16 (keras_eqssl.precision)
    c.train.jit_compile = False
    # Training steps per call of the compiled step (Keras `steps_per_execution`): > 1 saves the
    # host round trip per step on TPUs and GPUs. Must divide checkpoint_every (the epoch length);
    # callbacks then see every steps_per_execution-th step.
    c.train.steps_per_execution = 1
    # Gradient accumulation: each step splits the batch into this many micro-batches, one forward and
    # backward pass at a time, and makes one optimizer update from their mean gradient (the memory of
    # a batch of data.batch_size / accumulate_steps). data.batch_size stays the batch of one update and
    # must be a multiple of it (per replica). Losses over the batch (negatives, variance/covariance,
    # BatchNorm) see one micro-batch: docs/guide/memory.md.
    c.train.accumulate_steps = 1
    # True: bit-exact resume and replica equality. Turns oneDNN off (TF_ENABLE_ONEDNN_OPTS=0; faster on
    # x86-64 CPUs, on by default there, but processes then differ by rounding) and turns TensorFlow's op
    # determinism on (tf.config.experimental.enable_op_determinism()).
    c.train.deterministic = False
    c.train.progress = True

    # After training: export the encoder (SavedModel) and run the probes the data source allows,
    # next to the same network at initialisation; writes workdir/report/report.md.
    c.eval = ml_collections.ConfigDict()
    c.eval.enabled = True
    c.eval.families = "rotation,color,all"  # augmentation-parameter probe ("" = skip); also: blur, translation
    c.eval.parts = "embedding,invariant,equivariant"
    c.eval.heads = "linear"  # linear (ridge, grouped CV) and/or mlp (early-stopped); the constant row is always there
    c.eval.pairs_per_object = 32  # 3DIEBench probe: train pairs per object and repeat (of V(V-1))
    c.eval.repeats = 5  # probe repeats: every figure is a mean ± std over them
    c.eval.random_init = True  # also evaluate the untrained network, as the baseline
    return c
