"""The ARTNet model zoo: one pre-activation 3D ResNet skeleton with pluggable convolutions."""

from .registry import MODEL_OPTIONS, VARIANTS, Variant, create_model, get_variant, list_models
from .resnet3d import Architecture, PreActBlock, VideoResNet
from .smart import SMART, SquarePool

__all__ = [
    "MODEL_OPTIONS",
    "VARIANTS",
    "Architecture",
    "PreActBlock",
    "SMART",
    "SquarePool",
    "Variant",
    "VideoResNet",
    "create_model",
    "get_variant",
    "list_models",
]
