"""Backbones: shapes at two input sizes, pooled = mean, SIE layout details, parameter counts, config and saving."""

import keras
import numpy as np
import pytest
from nn_helpers import random_images, run_backbone_test

from keras_eqssl.nn import VIT_PRESETS, ResNetBackbone, VisionTransformer, available_backbones, backbone_from_name


# --- shapes, config round trip and .keras saving (the shared helper) ------------------------------
@pytest.mark.parametrize(
    "name, kwargs, sizes, grids, dim",
    [
        ("resnet18", dict(stem="imagenet", width=0.125), (32, 64), [(1, 1), (2, 2)], 64),
        ("resnet18", dict(stem="cifar", width=0.125), (32, 40), [(4, 4), (5, 5)], 64),
        ("resnet18", dict(stem="sie", width=0.125), (64, (48, 80)), [(2, 2), (2, 3)], 64),
        ("resnet50", dict(stem="imagenet", width=0.125), (32, 64), [(1, 1), (2, 2)], 256),
        ("resnet50", dict(stem="sie", width=0.0625), (64, 96), [(2, 2), (3, 3)], 128),
        ("resnet50", dict(stem="cifar", width=0.0625), (32, 48), [(4, 4), (6, 6)], 128),
    ],
)
def test_resnet_outputs_config_and_saving(name, kwargs, sizes, grids, dim, tmp_path):
    run_backbone_test(
        lambda: backbone_from_name(name, **kwargs), sizes, dim, grids, pooled_is_mean=True, tmp_path=tmp_path
    )


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_vit_outputs_config_and_saving(pooling, tmp_path):
    # 32 px is the stored 4x4 position grid; 48 px (6x6) and 40x56 (5x7) resize it.
    run_backbone_test(
        lambda: backbone_from_name("vit_tiny", pooling=pooling),
        (32, 48, (40, 56)),
        32,
        [(4, 4), (6, 6), (5, 7)],
        pooled_is_mean=pooling == "mean",
        tmp_path=tmp_path,
    )


def test_vit_cls_pooling_is_normalised_cls_token():
    vit = backbone_from_name("vit_tiny")
    images = random_images(2, 32)
    inner = keras.Model(vit.input, vit.get_layer("norm").output)
    np.testing.assert_allclose(vit(images)["pooled"], inner(images)[:, 0], atol=1e-6)


def test_vit_position_embedding_unchanged_at_stored_size():
    layer = VisionTransformer(**VIT_PRESETS["vit_tiny"]).get_layer("class_token_position_embedding")
    patches = np.zeros((1, 4, 4, 32), "float32")
    tokens = np.asarray(layer(patches))
    np.testing.assert_allclose(tokens[0, 1:], np.asarray(layer.position_embedding)[0, 1:], atol=1e-7)
    np.testing.assert_allclose(tokens[0, 0], np.asarray(layer.class_token + layer.position_embedding[:, :1])[0, 0])


# --- SIE layout -----------------------------------------------------------------------------------
def test_sie_projection_shortcut_in_every_stage_first_block():
    sie = ResNetBackbone([2, 2, 2, 2], stem="sie", width=0.125)
    imagenet = ResNetBackbone([2, 2, 2, 2], stem="imagenet", width=0.125)
    names = {layer.name for layer in sie.layers}
    for stack in range(4):
        assert f"stack{stack}_block0_shortcut_conv" in names
        assert f"stack{stack}_block1_shortcut_conv" not in names
    # torchvision's layout projects only where the shape changes: not in layer1 of ResNet-18.
    assert "stack0_block0_shortcut_conv" not in {layer.name for layer in imagenet.layers}
    assert "stack1_block0_shortcut_conv" in {layer.name for layer in imagenet.layers}


def test_sie_stride_on_second_conv():
    sie = ResNetBackbone([2, 2, 2, 2], stem="sie", width=0.125)
    imagenet = ResNetBackbone([2, 2, 2, 2], stem="imagenet", width=0.125)
    for stack in (1, 2, 3):
        assert sie.get_layer(f"stack{stack}_block0_conv1").strides == (1, 1)
        assert sie.get_layer(f"stack{stack}_block0_conv2").strides == (2, 2)
        assert imagenet.get_layer(f"stack{stack}_block0_conv1").strides == (2, 2)
        assert imagenet.get_layer(f"stack{stack}_block0_conv2").strides == (1, 1)
    # SIE's explicit pads, (2, 3) before the 7x7/2 conv and (0, 1) before the 3x3/2 pool ('same' on even sizes):
    # 256 -> 128 (conv) -> 64 (pool) -> ... -> 8x8 (research notes, section 3.5).
    assert sie.get_layer("stem_conv_pad").padding == ((2, 3), (2, 3))
    assert sie.get_layer("stem_pool_pad").padding == ((0, 1), (0, 1))
    assert sie.grid_size(256) == (8, 8)


def test_sie_zero_init_makes_each_block_its_shortcut():
    sie = ResNetBackbone([2, 2, 2, 2], stem="sie", width=0.125)
    for stack in range(4):
        for block in range(2):
            np.testing.assert_array_equal(sie.get_layer(f"stack{stack}_block{block}_bn2").gamma, 0.0)
    assert not np.any(
        np.asarray(ResNetBackbone([2, 2], stem="imagenet", width=0.125).get_layer("stack0_block0_bn2").gamma) == 0
    )
    name = "stack1_block0"
    probe = keras.Model(
        sie.input,
        [
            sie.get_layer(f"{name}_bn2").output,
            sie.get_layer(f"{name}_shortcut_bn").output,
            sie.get_layer(f"{name}_out").output,
        ],
    )
    for training in (False, True):
        residual, shortcut, out = (np.asarray(t) for t in probe(random_images(2, 64), training=training))
        np.testing.assert_array_equal(residual, 0.0)
        np.testing.assert_allclose(out, np.maximum(shortcut, 0.0), atol=1e-6)


def test_bottleneck_stride_on_3x3_conv():
    r50 = ResNetBackbone([1, 1], block_type="bottleneck", width=0.125)
    assert r50.get_layer("stack1_block0_conv1").strides == (1, 1)
    assert r50.get_layer("stack1_block0_conv2").strides == (2, 2)


# --- parameter counts (build only) ----------------------------------------------------------------
def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize(
    "name, expected",
    [("resnet18", 11_176_512), ("resnet50", 23_508_032), ("vit_s16", 21_665_664)],  # torchvision / timm, no head
)
def test_full_size_parameter_counts(name, expected):
    model = backbone_from_name(name)
    assert abs(_trainable(model) - expected) <= 0.01 * expected, f"{name}: {_trainable(model):,} vs {expected:,}"
    assert abs(model.count_params() - expected) <= 0.01 * expected  # + BN moving statistics


def test_full_size_feature_dims():
    assert backbone_from_name("resnet18", stem="sie").feature_dim == 512
    assert backbone_from_name("resnet50").feature_dim == 2048
    assert backbone_from_name("vit_s16").feature_dim == 384
    assert backbone_from_name("vit_s16").grid_size(224) == (14, 14)


# --- registry and validation ----------------------------------------------------------------------
def test_registry():
    assert {"resnet18", "resnet50", "vit_s16", "vit_tiny"} <= set(available_backbones())
    backbone = backbone_from_name("resnet18", stem="sie", width=0.25)
    assert (backbone.stem, backbone.width, backbone.feature_dim, backbone.feature_stride) == ("sie", 0.25, 128, 32)
    with pytest.raises(ValueError, match="Received: name='resnet19'"):
        backbone_from_name("resnet19")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stackwise_num_blocks=[2, 2], stem="tpu"), "Received: stem='tpu'"),
        (dict(stackwise_num_blocks=[2, 2], block_type="wide"), "Received: block_type='wide'"),
        (dict(stackwise_num_blocks=[2, 2], width=0), "Received: width=0"),
        (dict(stackwise_num_blocks=[2, 0]), r"Received: stackwise_num_blocks=\[2, 0\]"),
        (dict(stackwise_num_blocks=[2, 2], stackwise_num_filters=[64]), r"stackwise_num_filters=\[64\]"),
    ],
)
def test_resnet_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNetBackbone(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden_dim=30, num_heads=4), "hidden_dim=30, num_heads=4"),
        (dict(image_size=100, patch_size=16), "image_size=100, patch_size=16"),
        (dict(pooling="max"), "Received: pooling='max'"),
    ],
)
def test_vit_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VisionTransformer(**{**VIT_PRESETS["vit_tiny"], **kwargs})


def test_vit_any_size_inside_tf_function():
    # With unknown H, W at trace time the position table is resized under tf.cond.
    import tensorflow as tf

    vit = backbone_from_name("vit_tiny")
    traced = tf.function(
        lambda x: vit(x, training=False)["tokens"], input_signature=[tf.TensorSpec((None, None, None, 3))]
    )
    for size in (32, 48):
        images = random_images(2, size)
        np.testing.assert_allclose(traced(images), vit(images, training=False)["tokens"], atol=1e-5)


@pytest.mark.parametrize("size, new_size", [(4, 6), (4, 2), (14, 6), (7, 7)])
def test_bicubic_matrix_is_tf_image_resize(size, new_size):
    import tensorflow as tf

    from keras_eqssl.nn.class_token_position_embedding import bicubic_matrix

    grid = tf.random.stateless_normal([1, size, size + 1, 3], seed=[1, 2])
    expected = tf.image.resize(grid, [new_size, new_size + 2], method="bicubic")[0]
    rows, cols = bicubic_matrix(size, new_size), bicubic_matrix(size + 1, new_size + 2)
    np.testing.assert_allclose(tf.einsum("Hh,hwd,Ww->HWd", rows, grid[0], cols), expected, atol=1e-5)


def _torch_bicubic_reference(size: int, new_size: int) -> np.ndarray:
    """PyTorch's upsample_bicubic2d (align_corners=False, a=-0.75) at DINO's scale factor, one output at a time."""
    a, scale = -0.75, size / (new_size + 0.1)

    def kernel(x):
        x = abs(x)
        if x <= 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a if x < 2 else 0.0

    matrix = np.zeros((new_size, size))
    for j in range(new_size):
        u = scale * (j + 0.5) - 0.5
        base = int(np.floor(u))
        for k in range(-1, 3):
            matrix[j, min(max(base + k, 0), size - 1)] += kernel(u - (base + k))
    return matrix


@pytest.mark.parametrize("size, new_size", [(14, 6), (12, 6), (4, 7), (14, 14), (6, 2)])
def test_dino_bicubic_matrix_is_torch_interpolate_at_dinos_scale(size, new_size):
    from keras_eqssl.nn.class_token_position_embedding import dino_bicubic_matrix

    expected = _torch_bicubic_reference(size, new_size)
    np.testing.assert_allclose(dino_bicubic_matrix(size, new_size).numpy(), expected, atol=1e-6)
    assert np.allclose(expected.sum(axis=1), 1.0)  # an interpolation: rows sum to 1


@pytest.mark.parametrize("interpolation", ["dino", "tf"])
def test_vit_position_interpolation_static_and_dynamic_grids_agree(interpolation):
    import tensorflow as tf

    vit = VisionTransformer(**{**VIT_PRESETS["vit_tiny"], "position_interpolation": interpolation})
    images = random_images(2, 48)
    traced = tf.function(lambda x: vit(x)["tokens"], input_signature=[tf.TensorSpec((None, None, None, 3))])
    np.testing.assert_allclose(traced(images), vit(images)["tokens"], atol=1e-5)
    emb = vit.get_layer("class_token_position_embedding")
    assert emb.interpolation == interpolation and vit.get_config()["position_interpolation"] == interpolation


def test_vit_config_saved_before_the_option_keeps_tfs_resize():
    config = VisionTransformer(**VIT_PRESETS["vit_tiny"]).get_config()
    del config["position_interpolation"]
    assert VisionTransformer.from_config(config).position_interpolation == "tf"
    from keras_eqssl.nn import ClassTokenPositionEmbedding

    layer_config = ClassTokenPositionEmbedding(4).get_config()
    del layer_config["interpolation"]
    assert ClassTokenPositionEmbedding.from_config(layer_config).interpolation == "tf"


def test_vit_dino_position_interpolation_is_the_reference_resize():
    vit = VisionTransformer(**VIT_PRESETS["vit_tiny"])  # 4 x 4 table; 48 px is a 6 x 6 grid
    emb = vit.get_layer("class_token_position_embedding")
    table = emb.position_embedding.numpy()[0]
    grid = table[1:].reshape(4, 4, -1)
    m = _torch_bicubic_reference(4, 6)
    expected = np.concatenate([table[:1], np.einsum("Hh,hwd,Ww->HWd", m, grid, m).reshape(36, -1)])
    np.testing.assert_allclose(emb._positions(6, 6, 6, 6).numpy()[0], expected, atol=1e-6)


def test_vit_timm_init():
    vit = VisionTransformer(patch_size=8, hidden_dim=64, depth=2, num_heads=2, mlp_dim=256, image_size=32)
    block = vit.get_layer("block0")
    kernels = np.concatenate([np.ravel(block.mlp_in.kernel), np.ravel(block.mlp_out.kernel),
                              np.ravel(block.attention._query_dense.kernel)])  # fmt: skip
    assert abs(kernels.std() - 0.02) < 0.002 and abs(kernels.mean()) < 0.002
    assert np.all(np.asarray(block.mlp_in.bias) == 0) and np.all(np.asarray(block.attention._query_dense.bias) == 0)
    conv = vit.get_layer("patch_embedding")
    bound = 1 / np.sqrt(8 * 8 * 3)  # torch's Conv2d default: U(+-1/sqrt(fan_in)) for kernel and bias
    for w in (np.asarray(conv.kernel), np.asarray(conv.bias)):
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    glorot = VisionTransformer(patch_size=8, hidden_dim=64, depth=2, num_heads=2, mlp_dim=256, image_size=32,
                               init="glorot")  # fmt: skip
    limit = np.sqrt(6 / (64 + 256))
    assert np.abs(np.asarray(glorot.get_layer("block0").mlp_in.kernel)).max() > 0.8 * limit
    assert np.all(np.asarray(glorot.get_layer("patch_embedding").bias) == 0)
    assert vit.get_config()["init"] == "timm" and glorot.get_config()["init"] == "glorot"
    assert VisionTransformer.from_config(glorot.get_config()).init == "glorot"


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(init="xavier"), "Received: init='xavier'"), (dict(position_interpolation="area"), "interpolation='area'")],
)
def test_vit_bad_init_and_interpolation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VisionTransformer(**{**VIT_PRESETS["vit_tiny"], **kwargs})


def test_vit_drop_path_is_timms_stochastic_depth():
    from keras_eqssl.nn.transformer_encoder_block import TransformerEncoderBlock

    vit = VisionTransformer(**{**VIT_PRESETS["vit_tiny"], "depth": 3, "drop_path_rate": 0.2})
    assert [vit.get_layer(f"block{i}").drop_path_rate for i in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert VisionTransformer.from_config(vit.get_config()).drop_path_rate == 0.2
    images = random_images(4, 32)
    plain = VisionTransformer(**{**VIT_PRESETS["vit_tiny"], "depth": 3})
    plain.set_weights(vit.get_weights())
    np.testing.assert_allclose(vit(images, training=False)["tokens"], plain(images)["tokens"], atol=1e-6)
    assert not np.allclose(vit(images, training=True)["tokens"], plain(images)["tokens"], atol=1e-3)
    # per example: the whole branch is kept (scaled by 1 / keep) or dropped, with probability rate
    block = TransformerEncoderBlock(2, 8, drop_path_rate=0.25)
    dropped = np.asarray(block._drop_path(np.ones((4000, 3, 2), "float32"), training=True))
    per_example = dropped.reshape(4000, -1)
    assert np.all(per_example == per_example[:, :1])
    np.testing.assert_allclose(np.unique(per_example), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs((per_example[:, 0] == 0).mean() - 0.25) < 0.03
    with pytest.raises(ValueError, match="drop_path_rate=1.0"):
        TransformerEncoderBlock(2, 8, drop_path_rate=1.0)


def test_vit_resized_positions_compile_with_xla():
    # XLA has no ResizeBicubic: a known grid is resized by two constant matrices instead.
    import tensorflow as tf

    vit = backbone_from_name("vit_tiny")
    images = random_images(2, 48)
    compiled = tf.function(lambda x: vit(x, training=False)["tokens"], jit_compile=True)
    np.testing.assert_allclose(compiled(images), vit(images, training=False)["tokens"], atol=1e-4)


@pytest.fixture
def mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("name, kwargs", [("vit_tiny", {}), ("resnet18", dict(stem="sie", width=0.125))])
def test_backbones_under_mixed_precision(name, kwargs, mixed_precision):
    backbone = backbone_from_name(name, **kwargs)
    out = backbone(random_images(2, 48), training=False)  # 48 px: the ViT resizes its positions
    for key in ("feature_map", "tokens", "pooled"):
        assert out[key].dtype == "float16" and np.all(np.isfinite(np.asarray(out[key], "float32")))
