"""The reference executor runs a prototxt as Caffe's TEST phase would: checked on tiny nets."""

import math

import pytest
import torch
import torch.nn.functional as F

from artnet.errors import CheckpointError, ConfigError
from artnet.interop.caffemodel import CaffeModel, LayerBlobs
from artnet.interop.prototxt import load_net, parse_net
from artnet.interop.reference import ReferenceNet, caffe_reshape

from ..conftest import REFERENCE, require

TINY = """
name: "tiny"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 4 dim: 3 dim: 5 dim: 5 } shape { dim: 2 } } }
layer { name: "scale" type: "Power" bottom: "data" top: "data" power_param { scale: 100 } include { phase: TRAIN } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: [3, 3, 3] pad: [1, 1, 1] stride: [1, 2, 2] group: 2
                            weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.25 } } }
layer { name: "conv_bn" type: "BN" bottom: "conv" top: "conv_bn" bn_param { eps: 1e-7 } }
layer { name: "relu" type: "ReLU" bottom: "conv_bn" top: "conv_bn" }
layer { name: "energy" type: "Power" bottom: "conv_bn" top: "energy" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "concat" type: "Concat" bottom: "conv_bn" bottom: "energy" top: "concat" }
layer { name: "sum" type: "Eltwise" bottom: "concat" bottom: "concat" top: "sum" eltwise_param { coeff: 1 coeff: -0.25 } }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "pool"
        pooling_param { pool: AVE kernel_size: [1, 2, 2] stride: [1, 2, 2] } }
layer { name: "flat" type: "Reshape" bottom: "pool" top: "flat" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "drop" type: "Dropout" bottom: "flat" top: "flat" dropout_param { dropout_ratio: 0.9 } }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "top2" type: "Accuracy" bottom: "fc" bottom: "label" top: "top2" accuracy_param { top_k: 2 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _tiny(phase="TEST", weights=None):
    return ReferenceNet(parse_net(TINY, "tiny.prototxt"), weights, phase=phase, seed=3)


def test_blob_shapes_and_fillers():
    net = _tiny()
    shapes = {op.layer.name: [tuple(b.shape) for b in op.blobs] for op in net.layers if len(op.blobs)}
    # conv: (out, in / group, kT, kH, kW); BN: four (1, C) blobs as bn_layer.cpp; fc: (out, C * T * H * W)
    assert shapes == {"conv": [(6, 2, 3, 3, 3), (6,)], "conv_bn": [(1, 6)] * 4, "fc": [(3, 12 * 3 * 2 * 2), (3,)]}
    conv, bn, fc = (op.blobs for op in net.layers if len(op.blobs))
    assert conv[0].abs().max() <= math.sqrt(3 / (2 * 27)) and conv[0].std() > 0  # Caffe's xavier: fan_in = count / num
    assert torch.all(conv[1] == 0.25) and 0.05 < fc[0].std() < 0.2 and torch.all(fc[1] == 0)
    assert [b.unique().tolist() for b in bn] == [[0.0], [0.0], [0.0], [0.0]]  # no filler: constant 0, as Caffe
    assert net.output_names == ["loss", "top2", "prob"] and net.uninitialized == ["conv", "conv_bn", "fc"]


def test_forward_matches_the_caffe_layer_definitions():
    net = _tiny()
    generator = torch.Generator().manual_seed(0)
    scale, shift, mean, variance = (torch.rand(6, generator=generator) + 0.5 for _ in range(4))
    with torch.no_grad():
        for blob, value in zip(net.layers[1].blobs, (scale, shift, mean, variance)):
            blob.copy_(value.view(1, 6))
    data = torch.randn(2, 4, 3, 5, 5, generator=generator)
    label = torch.tensor([0.0, 2.0])
    with torch.no_grad():
        blobs = net(data=data, label=label)

    conv_w, conv_b = net.layers[0].blobs
    fc_w, fc_b = net.layers[-4].blobs
    view = (1, 6, 1, 1, 1)
    x = F.conv3d(data, conv_w, conv_b, (1, 2, 2), (1, 1, 1), groups=2)
    x = (x - mean.view(view)) / torch.sqrt(variance.view(view) + 1e-5) * scale.view(view) + shift.view(
        view
    )  # eps raised to cuDNN's 1e-5
    x = x.clamp(min=0)  # the in-place ReLU: concat reads the rectified blob
    x = torch.cat([x, (1 + 0.5 * x) ** 2], dim=1)
    x = 0.75 * x
    # 3 x 3 pooled with kernel 2, stride 2: Caffe rounds up, so the last window is clipped to 1 (and divides by 1).
    pooled = torch.stack(
        [torch.stack([x[..., r : r + 2, c : c + 2].mean(dim=(-2, -1)) for c in (0, 2)], dim=-1) for r in (0, 2)], dim=-2
    )
    assert blobs["pool"].shape == (2, 12, 3, 2, 2)
    torch.testing.assert_close(blobs["pool"], pooled)
    logits = pooled.flatten(1) @ fc_w.t() + fc_b
    torch.testing.assert_close(blobs["fc"], logits)
    torch.testing.assert_close(blobs["prob"], logits.softmax(1))
    torch.testing.assert_close(blobs["loss"], F.cross_entropy(logits, label.long()))
    ranks = (logits > logits.gather(1, label.long()[:, None])).sum(1)
    assert blobs["top2"].item() == (ranks < 2).float().mean().item()


def test_phase_rules_select_layers():
    test, train = _tiny("TEST"), _tiny("TRAIN")
    assert [op.layer.name for op in train.layers][:2] == ["scale", "conv"] and test.layers[0].layer.name == "conv"
    data = torch.randn(2, 4, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(train(data=data, label=torch.zeros(2))["data"], 100 * data)


def test_weights_are_copied_and_checked():
    source = _tiny()
    weights = CaffeModel(
        source.caffe_blobs() + [LayerBlobs("not_in_net", "Convolution", [torch.zeros(1).numpy()])], source="w.caffemodel"
    )
    copy = _tiny(weights=weights)  # layers the net does not have are ignored, as CopyTrainedLayersFrom does
    assert copy.uninitialized == []
    for ours, theirs in zip(copy.parameters(), source.parameters()):
        assert torch.equal(ours, theirs)
    wrong = CaffeModel(
        [LayerBlobs("conv", "Convolution", [b.detach().numpy() for b in source.layers[0].blobs][:1])], source="w.caffemodel"
    )
    with pytest.raises(CheckpointError, match="w.caffemodel: layer 'conv' has 1 blobs, tiny.prototxt expects 2"):
        _tiny(weights=wrong)
    misshapen = CaffeModel(
        [LayerBlobs("fc", "InnerProduct", [torch.zeros(3, 7).numpy(), torch.zeros(3).numpy()])], source="w.caffemodel"
    )
    with pytest.raises(CheckpointError, match=r"blob 0 of layer 'fc' has shape \(3, 7\), expected \(3, 144\)"):
        _tiny(weights=misshapen)


def test_accuracy_ties_rank_the_higher_class_first():
    net = ReferenceNet(
        parse_net(
            'input: "s" input_shape { dim: 1 dim: 3 } input: "l" input_shape { dim: 1 }'
            ' layer { name: "a" type: "Accuracy" bottom: "s" bottom: "l" top: "a" }'
        )
    )
    scores = torch.tensor([[1.0, 1.0, 0.0]])
    assert net(s=scores, l=torch.tensor([1.0]))["a"].item() == 1.0
    assert net(s=scores, l=torch.tensor([0.0]))["a"].item() == 0.0


@pytest.mark.parametrize(
    "shape, dims, axis, num_axes, expected",
    [
        ((2, 96, 7, 7), [-1, 3, 16, 7, 7], 0, -1, [4, 3, 16, 7, 7]),
        ((4, 101), [-1, 1, 2, 101], 0, -1, [2, 1, 2, 101]),
        ((2, 8), [0, 2, -1], 0, -1, [2, 2, 4]),
        ((2, 8), [2, 4], 1, -1, [2, 2, 4]),
        ((2, 8), [1], 1, 0, [2, 1, 8]),
    ],
)
def test_caffe_reshape(shape, dims, axis, num_axes, expected):
    assert caffe_reshape(list(shape), dims, axis, num_axes) == expected


def test_unsupported_layers_and_missing_inputs_are_named():
    text = 'input: "x" input_shape { dim: 1 dim: 3 }\nlayer { name: "lrn" type: "LRN" bottom: "x" top: "y" }'
    with pytest.raises(ConfigError, match=r"net.prototxt:2: layer 'lrn' of type 'LRN' is not supported"):
        ReferenceNet(parse_net(text, "net.prototxt"))
    net = _tiny()
    with pytest.raises(ConfigError, match="give the input blob"):
        net(data=torch.zeros(2, 4, 3, 5, 5))
    with pytest.raises(ConfigError, match="reads blob 'nowhere'"):
        ReferenceNet(
            parse_net('input: "x" input_shape { dim: 1 dim: 3 } layer { name: "r" type: "ReLU" bottom: "nowhere" top: "y" }', "n")
        )


def test_released_nets_build():
    """Every released net: its data layer becomes the inputs, every layer type is supported."""
    for prototxt, inputs in [
        ("models/112_artnet_resnet_18_deploy.prototxt", {"data": (10, 3, 16, 112, 112)}),
        ("fine_tune/hmdb_tsn_112_c3d_resnet_18_train_val.prototxt", {"data": (1, 96, 112, 112), "label": (1,)}),
    ]:
        net = ReferenceNet(load_net(require(REFERENCE / prototxt)))
        assert net.input_shapes == inputs
        fixed = [op for op in net.layers if op.layer.type == "Convolution" and op.layer.name.startswith("pooling")]
        assert all(torch.all(op.blobs[0] == 0.5) for op in fixed)  # the constant filler of the pooling convolutions
