"""Building blocks: backbones that return feature maps, tokens and pooled vectors; SSL heads."""

from keras_eqssl.nn.backbone import OUTPUT_KEYS, Backbone
from keras_eqssl.nn.class_token_position_embedding import ClassTokenPositionEmbedding
from keras_eqssl.nn.conv_decoder import ConvDecoder
from keras_eqssl.nn.conv_projector import ConvPredictor, ConvProjector
from keras_eqssl.nn.cross_attention import CrossAttention
from keras_eqssl.nn.dino_head import DINOHead
from keras_eqssl.nn.fused_batch_norm import FusedBatchNormalization
from keras_eqssl.nn.hypernetwork import LinearHypernetwork
from keras_eqssl.nn.keras_hub_backbone import KerasHubBackbone
from keras_eqssl.nn.mlp import MLP
from keras_eqssl.nn.registry import BACKBONES, available_backbones, backbone_from_name
from keras_eqssl.nn.resnet_backbone import ResNetBackbone
from keras_eqssl.nn.roi_align import roi_align
from keras_eqssl.nn.tokens_to_grid import TokensToGrid
from keras_eqssl.nn.torch_state_dict import read_state_dict, select_prefix, state_dict_from
from keras_eqssl.nn.torch_weights import (
    LoadReport,
    TorchWeightLoader,
    load_backbone_weights,
    load_mlp_weights,
    load_resnet_weights,
    load_vit_weights,
)
from keras_eqssl.nn.transformer_encoder_block import TransformerEncoderBlock
from keras_eqssl.nn.vit_backbone import VIT_PRESETS, VisionTransformer

__all__ = [
    "BACKBONES",
    "MLP",
    "LinearHypernetwork",
    "OUTPUT_KEYS",
    "VIT_PRESETS",
    "Backbone",
    "ClassTokenPositionEmbedding",
    "ConvDecoder",
    "ConvPredictor",
    "ConvProjector",
    "CrossAttention",
    "DINOHead",
    "FusedBatchNormalization",
    "KerasHubBackbone",
    "ResNetBackbone",
    "TokensToGrid",
    "TransformerEncoderBlock",
    "VisionTransformer",
    "available_backbones",
    "backbone_from_name",
    "roi_align",
    "LoadReport",
    "TorchWeightLoader",
    "load_backbone_weights",
    "load_mlp_weights",
    "load_resnet_weights",
    "load_vit_weights",
    "read_state_dict",
    "select_prefix",
    "state_dict_from",
]
