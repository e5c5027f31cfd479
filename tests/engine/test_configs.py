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


# The paper's figures, as the spec records them (ARTNET_SPEC.md section 7): Kinetics-400 val from Table 2 (and
# ARTNet+TSN from Table 4), UCF101 / HMDB51 means of 3 splits from Table 6.
TABLE_6 = {
    "ucf101/c3d_r18": 89.8,
    "ucf101/artnet_r18_d": 93.5,
    "ucf101/artnet_tsn_r18": 94.3,
    "hmdb51/c3d_r18": 62.1,
    "hmdb51/artnet_r18_d": 67.6,
    "hmdb51/artnet_tsn_r18": 70.9,
}


# The flow rows: Table 3 (two-stream, Kinetics-400 val) and Table 4 (with TSN).
FLOW_ROWS = {
    "kinetics/c3d_r18_flow": ("Table 3", 57.5, 80.6),
    "kinetics/artnet_r18_d_flow": ("Table 3", 59.8, 82.3),
    "kinetics/artnet_tsn_r18_flow": ("Table 4", 60.6, 83.1),
}


def test_every_recipe_of_the_paper_carries_its_figures():
    from artnet.models import get_variant

    for name in list_recipes():
        config = load_config(name)
        paper = config.paper
        if name in FLOW_ROWS:
            assert (paper.table, paper.top1, paper.top5, paper.released) == (*FLOW_ROWS[name], ""), name
        elif name.endswith("_flow"):  # fine-tuned flow streams: the paper reports RGB only
            assert paper.figures == "" and not paper.table and not paper.released, name
        elif name == "kinetics/artnet_tsn_r18":
            assert (paper.table, paper.top1, paper.top5) == ("Table 4", 70.7, 89.3)
        elif name.startswith("kinetics/"):
            variant = get_variant(config.model.name)
            assert (paper.table, paper.top1, paper.top5) == ("Table 2", variant.paper["top1"], variant.paper["top5"]), name
        elif name in TABLE_6:
            assert (paper.table, paper.top1, paper.top5) == ("Table 6", TABLE_6[name], None), name
        else:  # the built-in dataset's recipes are not in the paper
            assert paper.figures == "" and not paper.table, name
    released = {load_config(name).paper.released: load_config(name).model.name for name in list_recipes()}
    released.pop("")
    assert sorted(released) == sorted(f for v in ("c3d_r18", "artnet_r18_d") for f in get_variant(v).released)
    assert all(file in get_variant(model).released for file, model in released.items())


def test_a_paper_section_is_checked_where_it_is_written(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("_base_: tiny\npaper:\n  table: Table 9\n  top1: 101\n")
    with pytest.raises(ConfigError, match=r"mine.yaml:4: 'paper.top1' must be a percentage in \[0, 100\], got 101"):
        load_config(recipe)
    recipe.write_text("_base_: tiny\npaper:\n  top1: 50\n")
    with pytest.raises(ConfigError, match=r"mine.yaml:2: 'paper.table' must name where the paper reports the figures"):
        load_config(recipe)


def test_artnet_configs_lists_the_recipes_with_their_figures_and_prints_one(tmp_path, capsys):
    from artnet.cli import main

    assert main(["configs"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    rows = {cells[0]: cells[1:] for cells in ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)}
    assert set(list_recipes()) <= set(rows)
    released = "112_artnet_resnet_18_kinetics.caffemodel"
    expected = ["artnet_r18_d", "kinetics", "16x112x112", "224", "250000", "Table 2", "69.2 / 88.3", released]
    assert rows["kinetics/artnet_r18_d"] == expected
    tsn = rows["hmdb51/artnet_tsn_r18"]
    assert tsn[2] == "16x112x112, 2 segments" and tsn[5:7] == ["Table 6", "70.9"]

    assert main(["configs", "ucf101/artnet_tsn_r18"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"# {recipe_path('ucf101/artnet_tsn_r18')}"
    (tmp_path / "resolved.yaml").write_text(printed)
    assert load_config(tmp_path / "resolved.yaml") == load_config("ucf101/artnet_tsn_r18")
