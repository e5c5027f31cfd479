"""Every parametrised layer of the released deploy prototxts has exactly one artnet counterpart."""

import pytest
import torch
from torch import nn

from artnet import create_model
from artnet.interop.caffe_layout import caffe_layers
from artnet.interop.prototxt import load_net, triple
from artnet.models.smart import SquarePool

from ..conftest import REFERENCE, require

PARAMETRISED = {"Convolution", "BN", "InnerProduct"}


def _blob_channels(net) -> dict[str, int]:
    """Channels of every blob, by walking the net in order (the deploy input has 3)."""
    channels = {"data": 3}
    for layer in net:
        if layer.type in ("Convolution", "InnerProduct"):
            section = "convolution_param" if layer.type == "Convolution" else "inner_product_param"
            value = int(layer.param(section).get("num_output"))
        elif layer.type == "Concat":
            value = sum(channels[b] for b in layer.bottoms)
        elif layer.bottoms:
            value = channels[layer.bottoms[0]]
        else:
            continue
        for top in layer.tops:
            channels[top] = value
    return channels


@pytest.mark.parametrize("name, prototxt", [("c3d_r18", "112_c3d_resnet_18_deploy.prototxt"), ("artnet_r18_d", "112_artnet_resnet_18_deploy.prototxt")])
def test_layers_match_released_prototxt(name, prototxt):
    net = load_net(require(REFERENCE / "models" / prototxt))
    model = create_model(name)
    mapping = caffe_layers(model)
    channels = _blob_channels(net)

    caffe_layers_with_params = [layer for layer in net if layer.type in PARAMETRISED]
    assert sorted(mapping) == sorted(layer.name for layer in caffe_layers_with_params)
    mapped_modules = list(mapping.values())
    ours = [m for m in model.modules() if isinstance(m, (nn.Conv3d, nn.BatchNorm3d, nn.Linear, SquarePool))]
    assert len({id(m) for m in mapped_modules}) == len(mapped_modules) == len(ours)  # one-to-one, and nothing left over

    for layer in caffe_layers_with_params:
        module = mapping[layer.name]
        where = f"{prototxt}:{layer.line} {layer.name}"
        in_channels = channels[layer.bottoms[0]]
        if layer.type == "BN":
            assert isinstance(module, nn.BatchNorm3d), where
            assert module.num_features == in_channels, where
            assert (module.eps, module.momentum) == (1e-5, 0.1), where
        elif layer.type == "InnerProduct":
            param = layer.param("inner_product_param")
            assert isinstance(module, nn.Linear), where
            assert (module.in_features, module.out_features) == (in_channels, param.get("num_output")), where
            assert (module.bias is not None) == param.get("bias_term", True), where
        else:
            param = layer.param("convolution_param")
            out_channels = int(param.get("num_output"))
            kernel = triple(param, "kernel_size", 1)
            stride = triple(param, "stride", 1)
            pad = triple(param, "pad", 0)
            group = int(param.get("group", 1))
            if isinstance(module, SquarePool):
                # The fixed pairwise pooling: a 1x1x1 conv, one group per channel pair, weights 0.5, frozen.
                assert (kernel, stride, pad) == ((1, 1, 1), (1, 1, 1), (0, 0, 0)), where
                assert group == out_channels == in_channels // 2, where
                assert param.get("weight_filler").get("value") == 0.5 and not param.get("bias_term", True), where
                assert layer.message.get("param").get("lr_mult") == 0, where
                continue
            assert isinstance(module, nn.Conv3d), where
            assert (module.in_channels, module.out_channels) == (in_channels, out_channels), where
            assert module.kernel_size == kernel and module.stride == stride and module.padding == pad, where
            assert module.groups == group, where
            assert (module.bias is not None) == param.get("bias_term", True), where


def test_a_builder_of_ones_own_plugs_into_the_skeleton():
    """The skeleton asks a builder for its geometry, never for its name: a (2+1)D builder needs no change."""
    from torch import nn

    from artnet.models import Architecture, ConvBuilder, VideoResNet

    class Conv2Plus1D(ConvBuilder):
        def kernel(self, kernel):
            return kernel

        def __call__(self, in_channels, out_channels, kernel, stride, bias):
            t, k, _ = kernel
            return nn.Sequential(
                nn.Conv3d(in_channels, out_channels, (1, k, k), (1, *stride[1:]), (0, k // 2, k // 2), bias=bias),
                nn.Conv3d(out_channels, out_channels, (t, 1, 1), (stride[0], 1, 1), (t // 2, 0, 0), bias=bias),
            )

    class Spatial(Conv2Plus1D):
        def kernel(self, kernel):
            return (1, *kernel[1:])

    builder = Conv2Plus1D()
    arch = Architecture(stem="3d", stages=((builder, builder),) * 4)
    model = VideoResNet(arch, num_classes=5, width_mult=0.125)
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)
    assert model.layer2[0].shortcut.kernel_size == (3, 3, 3)
    spatial = VideoResNet(Architecture(stem="3d", stages=((Spatial(), "3d"),) * 4), num_classes=5, width_mult=0.125)
    assert spatial.layer2[0].shortcut.kernel_size == (1, 3, 3)  # the shortcut follows its first convolution
