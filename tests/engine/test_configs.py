"""Every shipped recipe loads against the schema, and the recipes carry the upstream solvers."""

import dataclasses

import pytest

from artnet.engine.config import list_recipes, load_config, recipe_path, recipes_root
from artnet.errors import ConfigError
from artnet.models import list_models


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_loads(name):
    config = load_config(name)
    assert config.model.name in list_models()


def test_recipes_are_named_or_given_by_path(tmp_path):
    assert "kinetics/artnet_r18_d" in list_recipes() and "kinetics/_base" not in list_recipes()
    assert load_config("kinetics/artnet_r18_d") == load_config(recipes_root() / "kinetics" / "artnet_r18_d.yaml")
    own = tmp_path / "mine.yaml"
    own.write_text("_base_: kinetics/artnet_r18_d\nsolver:\n  max_iter: 10\n  lr_steps: [5]\n")  # a user's recipe on a packaged one
    config = load_config(own)
    assert config.solver.max_iter == 10 and config.solver.batch_size == 224 and config.name == "kinetics_artnet_r18_d"
    with pytest.raises(
        ConfigError, match="kinetics/artnet_r18: no such config file or packaged recipe; did you mean 'kinetics/artnet_r18_[sd]'"
    ):
        load_config("kinetics/artnet_r18")
    assert recipe_path("demo").name == "demo.yaml"


def test_recipes_match_the_released_solvers():
    root = recipes_root()
    artnet = load_config(root / "kinetics" / "artnet_r18_d.yaml")
    assert (artnet.solver.batch_size, artnet.solver.base_lr, artnet.solver.max_iter) == (224, 0.1, 250000)
    assert artnet.solver.lr_steps == [70000, 140000, 180000, 220000] and artnet.model.dropout == 0.2
    assert load_config(root / "kinetics" / "c3d_r18.yaml").solver.batch_size == 256
    ucf = load_config(root / "ucf101" / "artnet_tsn_r18.yaml")
    assert (ucf.solver.base_lr, ucf.solver.lr_stepsize, ucf.solver.max_iter, ucf.solver.clip_grad_norm) == (0.001, 1500, 3500, 40)
    assert (ucf.data.clip.num_segments, ucf.solver.batch_size, ucf.model.dropout, ucf.train.bn) == (2, 120, 0.5, "train")
    hmdb = load_config(root / "hmdb51" / "c3d_r18.yaml")
    assert (hmdb.solver.lr_stepsize, hmdb.solver.max_iter) == (750, 1750)


def test_a_flow_recipe_is_its_rgb_recipe_reading_flow():
    flow_recipes = [name for name in list_recipes() if name.endswith("_flow")]
    assert {"kinetics/c3d_r18_flow", "kinetics/artnet_r18_d_flow", "kinetics/artnet_tsn_r18_flow"} <= set(flow_recipes)
    assert {f"{d}/{m}_flow" for d in ("ucf101", "hmdb51") for m in ("c3d_r18", "artnet_r18_d", "artnet_tsn_r18")} <= set(
        flow_recipes
    )
    for name in flow_recipes:
        flow, rgb = load_config(name), load_config(name.removesuffix("_flow"))
        assert flow.data.clip == rgb.data.clip.replace(normalization="flow"), name
        assert flow.model == rgb.model and flow.solver == rgb.solver and flow.test == rgb.test, name  # in_channels: from the clip
        assert flow.name == f"{rgb.name}_flow" and flow.data.root != rgb.data.root, name
        expected_init = f"runs/kinetics_{name.split('/')[1]}/final.pt" if rgb.train.init else ""
        assert flow.train == dataclasses.replace(rgb.train, init=expected_init), name
