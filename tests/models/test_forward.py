"""Shapes, the energy pooling formula, gradients, options."""

import pytest
import torch

from artnet import create_model, list_models
from artnet.cli.parsing import parse_dims
from artnet.data import ClipSpec
from artnet.errors import ConfigError
from artnet.models import SMART, SquarePool
from artnet.models.complexity import profile

SMALL = {"width_mult": 0.125, "depths": (1, 1, 1, 1), "num_classes": 5}


def test_feature_map_shapes_of_the_released_clip():
    shapes = {c.stage: c.output_shape for c in profile("artnet_r18_d", (16, 112, 112))}
    assert shapes == {
        "stem": (64, 8, 56, 56),
        "layer1": (64, 8, 56, 56),
        "layer2": (128, 4, 28, 28),
        "layer3": (256, 2, 14, 14),
        "layer4": (512, 1, 7, 7),
        "fc": (400,),
    }


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("clip", [(8, 56, 56), (16, 112, 112), (32, 128, 171)])
def test_every_variant_accepts_other_clip_sizes(name, clip):
    costs = profile(name, clip, num_classes=7)
    assert costs[-1].output_shape == (7,)
    assert costs[-2].output_shape[0] == 512


@pytest.mark.parametrize("name", list_models())
def test_every_variant_takes_two_channel_flow(name):
    model = create_model(name, in_channels=2, **SMALL).eval()
    flow = torch.randn(2, 2, 8, 32, 32)  # (B, x / y, T, H, W)
    assert model(flow).shape == (2, 5)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3, 8, 32, 32))


def test_c3d_shapes_of_a_small_clip():
    shapes = {c.stage: c.output_shape for c in profile("c3d_r18", (8, 56, 56))}
    assert shapes["stem"] == (64, 4, 28, 28) and shapes["layer4"] == (512, 1, 4, 4)


def test_c2d_keeps_eight_frames_and_averages_them():
    shapes = {c.stage: c.output_shape for c in profile("c2d_r18", (16, 112, 112))}
    assert [shapes[s][1] for s in ("stem", "layer1", "layer2", "layer3", "layer4")] == [8] * 5
    model = create_model("c2d_r18", **SMALL).eval()
    clip = torch.randn(2, 3, 16, 32, 32)
    shuffled = clip[:, :, torch.tensor([2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13])]
    # Per-frame features and a temporal average: frame order carries no information.
    torch.testing.assert_close(model(clip), model(shuffled), rtol=1e-4, atol=1e-5)


def test_square_pool_is_half_the_sum_of_adjacent_squares():
    u = torch.randn(2, 6, 3, 4, 5)
    z = SquarePool()(u)
    expected = torch.stack([0.5 * (u[:, 2 * j] ** 2 + u[:, 2 * j + 1] ** 2) for j in range(3)], dim=1)
    torch.testing.assert_close(z, expected)


def test_square_pool_works_in_channels_last():
    u = torch.randn(2, 8, 3, 4, 5)
    torch.testing.assert_close(SquarePool()(u.to(memory_format=torch.channels_last_3d)), SquarePool()(u))


def test_smart_block_computes_the_published_formula():
    block = SMART(4, 6, (3, 3, 3), stride=1, bias=False).train()
    x = torch.randn(2, 4, 5, 6, 6)
    bn = lambda t: torch.nn.functional.batch_norm(t, None, None, training=True, eps=1e-5)  # noqa: E731  fresh BN: gamma 1, beta 0
    a = bn(torch.nn.functional.conv3d(x, block.appearance.weight, padding=(0, 1, 1)))
    u = bn(torch.nn.functional.conv3d(x, block.relation.weight, padding=1))
    z = bn(0.5 * (u[:, 0::2] ** 2 + u[:, 1::2] ** 2))
    expected = torch.nn.functional.conv3d(torch.relu(torch.cat([a, z], 1)), block.reduce.weight)
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)


def test_conv1_appearance_branch_sees_even_frames_only():
    model = create_model("artnet_r18_d", **SMALL).eval()
    clip = torch.randn(1, 3, 16, 32, 32)
    odd_changed = clip.clone()
    odd_changed[:, :, 1::2] = torch.randn_like(odd_changed[:, :, 1::2])
    appearance = model.stem.appearance
    torch.testing.assert_close(appearance(clip), appearance(odd_changed))
    assert not torch.allclose(model.stem.relation(clip), model.stem.relation(odd_changed))


@pytest.mark.parametrize("name", list_models())
def test_gradients_reach_every_trainable_weight(name):
    model = create_model(name, **SMALL).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 8, 32, 32)), torch.tensor([0, 3]))
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_relation_variants_have_no_appearance_branch():
    model = create_model("relation_r18_d", **SMALL)
    assert model.stem.appearance is None and model.layer1[0].conv_b.appearance is None
    wide = create_model("relation_r18_d", relation_channels="wide", **SMALL)
    assert wide.stem.reduce is None and wide.stem.relation.out_channels == 2 * wide.stem.energy_bn.num_features
    assert wide(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)


def test_dropout_and_in_channels_options():
    model = create_model("c3d_r18", dropout=0.5, in_channels=2, **SMALL)
    assert model.dropout.p == 0.5 and model.stem.in_channels == 2
    assert model(torch.randn(1, 2, 8, 32, 32)).shape == (1, 5)


def test_xavier_init_matches_caffe_bounds_and_pytorch_init_differs():
    conv = create_model("c3d_r18", **SMALL).layer1[0].conv_a
    bound = (3.0 / (conv.in_channels * 27)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(conv.bias) == 0
    torch_init = create_model("c3d_r18", init="pytorch", **SMALL).layer1[0].conv_a
    assert torch.count_nonzero(torch_init.bias) > 0


def test_width_multiplier_keeps_channels_even():
    model = create_model("artnet_r18_d", width_mult=0.1, depths=(1, 1, 1, 1))
    assert all(b.conv_b.relation.out_channels % 2 == 0 for b in (model.layer1[0], model.layer2[0], model.layer3[0]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shortcutt": "1x1x1"}, "did you mean 'shortcut'"),
        ({"shortcut": "2x2x2"}, "shortcut must be"),
        ({"init": "he"}, "init must be"),
        ({"relation_channels": "x"}, "relation_channels must be"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("relation_r18_d", **kwargs)


def test_unknown_model_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'artnet_r18_d'"):
        create_model("artnet_r18d")


def test_empty_clip_and_bad_clip_size_are_clear_errors():
    with pytest.raises(ValueError, match="does not survive"):
        profile("c3d_r18", (0, 112, 112))
    with pytest.raises(ValueError, match="T x H x W"):
        parse_dims("16x112", "--input", ("T", "H", "W"), "16x112x112")


def test_pretrained_cfg_travels_with_the_model():
    model = create_model("artnet_r18_d")
    assert model.variant == "artnet_r18_d"
    cfg = model.pretrained_cfg
    assert cfg.clip == ClipSpec() and cfg.clip.normalization == "caffe" and cfg.clip.input_shape == (3, 16, 112, 112)
    assert cfg.caffemodels[0].endswith("112_artnet_resnet_18_kinetics.caffemodel")
    assert cfg.classifier == "fc" and model.get_submodule(cfg.classifier) is model.fc
    assert cfg.first_conv == ("stem.appearance", "stem.relation")
    assert create_model("c3d_r18").pretrained_cfg.first_conv == ("stem",)
    assert create_model("relation_r18_s").pretrained_cfg.first_conv == ("stem.relation",)
