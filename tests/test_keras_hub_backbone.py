"""keras-hub backbones behind our backbone contract: outputs, save/load, presets, configs, training and export.

Every keras-hub model here is built randomly initialised from its constructor: nothing downloads.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.nn import KerasHubBackbone
from keras_eqssl.nn.keras_hub_backbone import hub_backbone_from_spec, keras_hub_backbone_from_name
from tests.helpers import random_images
from tests.train_helpers import tiny

keras_hub = pytest.importorskip("keras_hub")

# keras-hub's basic-block ResNet wants 64 channels into and out of its first stage; the last gives 32 features.
RESNET_ARGS = dict(
    input_conv_filters=[64],
    input_conv_kernel_sizes=[3],
    stackwise_num_filters=[64, 32],
    stackwise_num_blocks=[1, 1],
    stackwise_num_strides=[1, 2],
    block_type="basic_block",
)
VIT_ARGS = dict(image_shape=[32, 32, 3], patch_size=8, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64)


def tiny_resnet():
    return keras_hub.models.ResNetBackbone(**RESNET_ARGS)


def tiny_vit():
    return keras_hub.models.ViTBackbone(**VIT_ARGS)


def test_a_resnet_gives_its_feature_map_as_tokens_and_pooled_vector():
    hub = tiny_resnet()
    backbone = KerasHubBackbone(hub)
    images = random_images(2, (40, 48)).astype("float32")
    out = backbone(images)
    feature_map = hub(images).numpy()
    assert feature_map.shape == (2, 5, 6, 32)  # stride 8: conv 2, pool 2, stage 2
    assert (backbone.feature_dim, backbone.feature_stride, backbone.grid_size((40, 48))) == (32, 8, (5, 6))
    assert backbone.has_spatial_map and backbone.patch_size is None
    np.testing.assert_allclose(out["feature_map"], feature_map, rtol=1e-6)
    np.testing.assert_allclose(out["tokens"], feature_map.reshape(2, 30, 32), rtol=1e-6)
    np.testing.assert_allclose(out["pooled"], feature_map.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_a_vit_gives_its_patch_tokens_on_their_grid_and_its_class_token():
    hub = tiny_vit()
    images = random_images(2, (32, 32)).astype("float32")
    sequence = hub(images).numpy()  # (2, 1 + 16, 32): the class token first
    out = KerasHubBackbone(hub)(images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "feature_map": (2, 4, 4, 32),
        "tokens": (2, 16, 32),
        "pooled": (2, 32),
    }
    np.testing.assert_allclose(out["tokens"], sequence[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(out["feature_map"][:, 1, 2], sequence[:, 1 + 4 + 2], rtol=1e-6)  # row-major
    np.testing.assert_allclose(out["pooled"], sequence[:, 0], rtol=1e-6)
    mean = KerasHubBackbone(hub, pooling="mean", name="mean_pooled")(images)["pooled"]
    np.testing.assert_allclose(mean, sequence[:, 1:].mean(axis=1), rtol=1e-5, atol=1e-6)
    backbone = KerasHubBackbone(hub)
    assert (backbone.feature_dim, backbone.feature_stride, backbone.patch_size) == (32, 8, 8)
    assert backbone.grid_size(32) == (4, 4)


def test_a_vit_without_class_token_cannot_pool_it():
    hub = keras_hub.models.ViTBackbone(**VIT_ARGS, use_class_token=False)
    assert tuple(KerasHubBackbone(hub)(np.zeros((1, 32, 32, 3), "float32"))["pooled"].shape) == (1, 32)
    with pytest.raises(ValueError, match="has no class token"):
        KerasHubBackbone(hub, pooling="cls")


@pytest.mark.parametrize("make", [tiny_resnet, tiny_vit], ids=["resnet", "vit"])
def test_the_adapter_saves_and_loads_as_keras(make, tmp_path):
    backbone = KerasHubBackbone(make(), name="hub")
    images = random_images(2, (32, 32)).astype("float32")
    backbone.save(tmp_path / "backbone.keras")
    loaded = keras.models.load_model(tmp_path / "backbone.keras")
    assert type(loaded) is KerasHubBackbone and type(loaded.hub_backbone) is type(backbone.hub_backbone)
    assert loaded.feature_dim == backbone.feature_dim and loaded.feature_stride == backbone.feature_stride
    for key, value in backbone(images).items():
        np.testing.assert_array_equal(loaded(images)[key], value)


def test_a_local_preset_directory_loads_without_a_download(tmp_path):
    hub = tiny_resnet()
    hub.save_to_preset(str(tmp_path / "preset"))
    backbone = keras_hub_backbone_from_name(f"keras_hub:{tmp_path / 'preset'}")
    assert backbone.name == "preset"
    for ours, saved in zip(backbone.hub_backbone.weights, hub.weights):
        np.testing.assert_array_equal(ours, saved)


def test_unknown_classes_presets_and_arguments_are_refused():
    with pytest.raises(ValueError, match="takes no argument"):
        hub_backbone_from_spec("ResNetBackbone", {**RESNET_ARGS, "stackwise_num_filter": [64]})
    with pytest.raises(ValueError, match="nothing is downloaded"):
        hub_backbone_from_spec("NoSuchBackbone")
    # A ViT's input size is fixed: the view size fills it in when the arguments leave it out.
    vit = hub_backbone_from_spec("ViTBackbone", {k: v for k, v in VIT_ARGS.items() if k != "image_shape"}, 48)
    assert tuple(vit.image_shape) == (48, 48, 3)


def hub_config(tmp_path, backbone: str, arguments: dict):
    config = tiny(get_config(), tmp_path, tmp_path, steps=2, every=2)
    config.data.source = "skimage_photos"
    config.model.backbone = f"keras_hub:{backbone}"
    config.model.keras_hub.update(arguments)
    return config


def test_a_config_names_a_keras_hub_class_and_its_arguments(tmp_path):
    validate(hub_config(tmp_path, "ResNetBackbone", RESNET_ARGS))
    validate(hub_config(tmp_path, "ViTBackbone", VIT_ARGS))
    with pytest.raises(ConfigError, match=r"config.model.backbone='keras_hub:ResNetBackbon'.*neither a keras_hub"):
        validate(hub_config(tmp_path, "ResNetBackbon", RESNET_ARGS))
    with pytest.raises(ConfigError, match=r"config.model.keras_hub: .* no argument\(s\) \['depth'\]"):
        validate(hub_config(tmp_path, "ViTBackbone", {**VIT_ARGS, "depth": 2}))
    config = hub_config(tmp_path, "ViTBackbone", VIT_ARGS)
    config.augment.size = 48
    with pytest.raises(ConfigError, match=r"takes 32 x 32 px images only .* config.augment.size=48 differ"):
        validate(config)
    config = hub_config(tmp_path, "ViTBackbone", {k: v for k, v in VIT_ARGS.items() if k != "image_shape"})
    config.augment.policy, config.augment.gtsa.local_size = "gtsa", 16  # local crops: another size
    with pytest.raises(ConfigError, match=r"takes 32 x 32 px .* config.augment.gtsa.local_size=16 differ"):
        validate(config)
    config.model.backbone = "resnet_18"
    with pytest.raises(ConfigError, match=r"config.model.backbone='resnet_18': must be one of"):
        validate(config)


def test_a_bad_argument_value_is_a_config_error_naming_the_section(tmp_path):
    from keras_eqssl.methods.factory import model_from_config

    config = hub_config(tmp_path, "ResNetBackbone", {**RESNET_ARGS, "block_type": "basic"})
    with pytest.raises(ConfigError, match=r"config.model.keras_hub=.*does not make a backbone: .*block_type"):
        model_from_config(config)


@pytest.mark.slow  # two end-to-end runs and exports; CI runs them in the full suite
@pytest.mark.parametrize(
    "backbone, arguments", [("ResNetBackbone", RESNET_ARGS), ("ViTBackbone", VIT_ARGS)], ids=["resnet", "vit"]
)
def test_a_keras_hub_backbone_trains_and_exports(backbone, arguments, tmp_path):
    from keras_eqssl.cli.train import train
    from keras_eqssl.export import export_encoder

    config = hub_config(tmp_path, backbone, arguments)
    config.train.deterministic = False
    validate(config)
    history = train(config)["history"]
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"]).all()
    model = keras.models.load_model(tmp_path / "model.keras")
    assert type(model.backbone) is KerasHubBackbone
    export_encoder(model, tmp_path / "export")
    serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    features = serve(images=tf.constant(random_images(3, (40, 40)), tf.float32))
    assert features["embedding"].shape == (3, 32) and features["invariant"].shape == (3, 16)
    assert np.isfinite(features["embedding"].numpy()).all() and np.std(features["embedding"].numpy()) > 0
