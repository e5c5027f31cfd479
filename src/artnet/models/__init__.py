"""The ARTNet model zoo: one pre-activation 3D ResNet skeleton with pluggable convolutions."""

from .registry import MODEL_OPTIONS, VARIANTS, PretrainedCfg, Variant, create_model, get_variant, list_models
from .resnet3d import Architecture, ConvBuilder, PreActBlock, VideoResNet
from .smart import SMART, SquarePool

__all__ = [
    "MODEL_OPTIONS",
    "VARIANTS",
    "Architecture",
    "ConvBuilder",
    "PreActBlock",
    "PretrainedCfg",
    "SMART",
    "SquarePool",
    "Variant",
    "VideoResNet",
    "create_model",
    "get_variant",
    "list_models",
]
