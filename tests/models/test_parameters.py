"""Parameter counts against the paper's Table 1 and the released prototxts (spec §2.8)."""

import pytest
import torch

from artnet import create_model, list_models
from artnet.models.complexity import count_parameters


@pytest.mark.parametrize(
    "name, shortcut, millions",
    [
        # The paper's Table 1 matches 1x1x1 projection shortcuts to every digit.
        ("c3d_r18", "1x1x1", 33.37),
        ("artnet_r18_s", "1x1x1", 33.39),
        ("artnet_r18_d", "1x1x1", 35.20),
        # The released prototxts use 3x3x3 stride-2 shortcuts.
        ("c3d_r18", "3x3x3", 37.85),
        ("artnet_r18_d", "3x3x3", 39.68),
    ],
)
def test_parameter_counts(name, shortcut, millions):
    with torch.device("meta"):
        model = create_model(name, shortcut=shortcut)
    assert round(count_parameters(model) / 1e6, 2) == millions


def test_default_shortcut_is_the_released_one():
    with torch.device("meta"):
        assert count_parameters(create_model("c3d_r18")) == count_parameters(create_model("c3d_r18", shortcut="3x3x3"))


def test_energy_pooling_has_no_parameters():
    model = create_model("artnet_r18_d", width_mult=0.25, depths=(1, 1, 1, 1))
    pools = [m for name, m in model.named_modules() if name.endswith("energy_pool")]
    assert len(pools) == 4  # conv1 + one block in each of conv2_x..conv4_x
    assert all(len(list(p.parameters())) == 0 and len(list(p.buffers())) == 0 for p in pools)


@pytest.mark.parametrize("name", list_models())
def test_every_variant_counts_its_parameters(name):
    with torch.device("meta"):
        small = create_model(name, shortcut="1x1x1")
        large = create_model(name, shortcut="3x3x3")
    assert 5e6 < count_parameters(small) < count_parameters(large) < 80e6


def test_bias_placement_as_released():
    model = create_model("artnet_r18_d")
    assert model.stem.appearance.bias is None and model.stem.relation.bias is None and model.stem.reduce.bias is None
    assert model.layer1[0].conv_a.bias is None and model.layer1[0].conv_b.reduce.bias is None
    assert model.layer2[0].conv_a.bias is not None and model.layer2[0].conv_b.reduce.bias is not None
    assert model.layer2[0].shortcut.bias is not None and model.layer4[1].conv_b.bias is not None
    c3d = create_model("c3d_r18")
    assert all(m.bias is not None for m in c3d.modules() if isinstance(m, torch.nn.Conv3d))
