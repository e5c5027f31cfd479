"""The demo's machinery on a tiny built-in dataset and a few iterations (the real run is minutes)."""

from artnet.demo import default_recipe, results_table, run_demo
from artnet.engine.config import load_config

TINY = ["model.width_mult=0.125", "model.depths=[1,1,1,1]", "data.clip.frame_size=[40,52]", "data.clip.clip_len=8", "data.clip.crop_size=32"]
TINY += ["solver.max_iter=2", "solver.lr_steps=[1]", "solver.batch_size=8", "solver.warmup_iters=0", "train.checkpoint_interval=2"]


def test_packaged_recipe_loads():
    config = load_config(default_recipe())
    assert config.model.name == "artnet_r18_d" and config.test.protocol == "25x1"


def test_demo_compares_models_by_class_kind(tmp_path, capsys):
    options = dict(clips_per_class=3, num_frames=20, height=40, width=52, workers=1)
    results = run_demo(compare=True, out_dir=tmp_path / "runs", data_dir=tmp_path / "data", overrides=TINY, dataset_options=options)
    assert [r.model for r in results] == ["artnet_r18_d", "c3d_r18", "c2d_r18"]
    for result in results:
        assert 0 <= result.appearance <= 100 and 0 <= result.temporal <= 100 and result.train_seconds > 0
        assert result.temporal + result.partner_confusions <= 100.0001
    output = capsys.readouterr().out
    assert results_table(results) in output and "chance: 8.3% overall" in output
    assert (tmp_path / "runs" / "demo.png").stat().st_size > 5000
    # a second call reuses the finished runs instead of training again
    again = run_demo(out_dir=tmp_path / "runs", data_dir=tmp_path / "data", overrides=TINY, dataset_options=options)
    assert again[0].train_seconds == results[0].train_seconds and "== training" not in capsys.readouterr().out
