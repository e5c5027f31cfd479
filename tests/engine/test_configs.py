"""Every shipped recipe loads against the schema, and the recipes carry the upstream solvers."""

from pathlib import Path

import pytest

from artnet.engine.config import load_config
from artnet.models import list_models

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads(path):
    config = load_config(path)
    assert config.model.name in list_models()


def test_recipes_match_the_released_solvers():
    root = Path(__file__).resolve().parents[2] / "configs"
    artnet = load_config(root / "kinetics" / "artnet_r18_d.yaml")
    assert (artnet.solver.batch_size, artnet.solver.base_lr, artnet.solver.max_iter) == (224, 0.1, 250000)
    assert artnet.solver.lr_steps == [70000, 140000, 180000, 220000] and artnet.model.dropout == 0.2
    assert load_config(root / "kinetics" / "c3d_r18.yaml").solver.batch_size == 256
    ucf = load_config(root / "ucf101" / "artnet_tsn_r18.yaml")
    assert (ucf.solver.base_lr, ucf.solver.lr_stepsize, ucf.solver.max_iter, ucf.solver.clip_grad_norm) == (0.001, 1500, 3500, 40)
    assert (ucf.data.clip.num_segments, ucf.solver.batch_size, ucf.model.dropout, ucf.train.bn) == (2, 120, 0.5, "train")
    hmdb = load_config(root / "hmdb51" / "c3d_r18.yaml")
    assert (hmdb.solver.lr_stepsize, hmdb.solver.max_iter) == (750, 1750)
