"""Which artnet module is which layer of the released Caffe networks.

The released prototxts name their layers as follows (``i`` counts SMART blocks from 1 at conv1):

* conv1: ``conv1`` (C3D) or the SMART parts ``conv1``, ``conv1_bn``, ``conv1_t``,
  ``conv1_t_bn``, ``pooling1``, ``pooling1_bn``, ``redu1``;
* block ``res{stage}{letter}``: ``_1`` and ``_1_bn`` (first conv), ``_2`` (second conv) or, for
  SMART, ``_2``, ``_2_bn``, ``_2_t``, ``_2_t_bn``, ``pooling{i}``, ``pooling{i}_bn``,
  ``redu{i}``; ``_down`` (projection shortcut); ``res{stage}{letter}_bn`` is the BN after the sum,
  which in artnet is the *next* block's ``norm_in`` (or the final ``norm``);
* the pre-activation BN of the stem output: ``conv1_bn`` (C3D) or ``redu1_bn`` (ARTNet);
* the classifier: ``fc8`` (Kinetics), ``fc`` (the fine-tuning nets).

This table serves the structure tests and the weight converter alike.
"""

from __future__ import annotations

from string import ascii_lowercase

from torch import nn

from ..models.resnet3d import VideoResNet
from ..models.smart import SMART


def _smart_layers(module: SMART, base: str, index: int) -> dict[str, nn.Module]:
    layers: dict[str, nn.Module] = {}
    if module.appearance is not None:
        layers[base] = module.appearance
        layers[f"{base}_bn"] = module.appearance_bn
    layers[f"{base}_t"] = module.relation
    layers[f"{base}_t_bn"] = module.relation_bn
    layers[f"pooling{index}"] = module.energy_pool
    layers[f"pooling{index}_bn"] = module.energy_bn
    if module.reduce is not None:
        layers[f"redu{index}"] = module.reduce
    return layers


def caffe_layers(model: VideoResNet, fc_name: str = "fc8") -> dict[str, nn.Module]:
    """Caffe layer name -> the artnet module holding its parameters, in network order."""
    layers: dict[str, nn.Module] = {}
    smart_count = 0

    def add(module: nn.Module, base: str) -> None:
        nonlocal smart_count
        if isinstance(module, SMART):
            smart_count += 1
            layers.update(_smart_layers(module, base, smart_count))
        else:
            layers[base] = module

    add(model.stem, "conv1")
    sum_norm = f"redu{smart_count}_bn" if isinstance(model.stem, SMART) and model.stem.reduce is not None else "conv1_bn"
    for stage_index, stage in enumerate((model.layer1, model.layer2, model.layer3, model.layer4), start=2):
        for block_index, block in enumerate(stage):
            prefix = f"res{stage_index}{ascii_lowercase[block_index]}"
            layers[sum_norm] = block.norm_in
            add(block.conv_a, f"{prefix}_1")
            layers[f"{prefix}_1_bn"] = block.norm_a
            add(block.conv_b, f"{prefix}_2")
            if block.shortcut is not None:
                layers[f"{prefix}_down"] = block.shortcut
            sum_norm = f"{prefix}_bn"
    layers[sum_norm] = model.norm
    layers[fc_name] = model.fc
    return layers
