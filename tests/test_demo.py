"""The demo's machinery on a tiny built-in dataset and a few iterations (the real run is minutes)."""

import subprocess
import sys

import numpy as np
import pytest

from artnet.data.synthetic import generate
from artnet.demo import default_recipe, results_table, run_demo, seeds_table, two_stream_table
from artnet.outputs import folder_lock
from artnet.engine.config import load_config
from artnet.engine.fusion import TSN_WEIGHTS

TINY = [
    "model.width_mult=0.125",
    "model.depths=[1,1,1,1]",
    "data.clip.frame_size=[40,52]",
    "data.clip.clip_len=8",
    "data.clip.crop_size=32",
]
TINY += ["solver.max_iter=2", "solver.lr_steps=[1]", "solver.batch_size=8", "solver.warmup_iters=0", "train.checkpoint_interval=2"]


def test_packaged_recipe_loads():
    config = load_config(default_recipe())
    assert config.model.name == "artnet_r18_d" and config.test.protocol == "25x1"


def test_demo_compares_models_by_class_kind(tmp_path, capsys):
    options = dict(clips_per_class=3, num_frames=20, height=40, width=52, workers=1)
    results = run_demo(
        compare=True, out_dir=tmp_path / "runs", data_dir=tmp_path / "data", overrides=TINY, dataset_options=options
    )
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


def test_seeds_give_one_run_each_and_a_table_of_mean_and_range(tmp_path, capsys):
    options = {"clips_per_class": 3, "num_frames": 20, "height": 40, "width": 52, "workers": 1}
    overrides = [*TINY, "test.acceleration=fp32"]
    results = run_demo(out_dir=tmp_path / "runs", data_dir=tmp_path / "data", overrides=overrides, dataset_options=options, seeds=[3, 4])
    assert [(r.model, r.seed) for r in results] == [("artnet_r18_d", 3), ("artnet_r18_d", 4)]
    for seed in (3, 4):
        assert load_config(tmp_path / "runs" / f"seed{seed}" / "artnet_r18_d" / "config.yaml").train.seed == seed
    table = seeds_table(results)
    assert table in capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| artnet_r18_d"))
    top1 = [r.top1 for r in results]
    assert f"| {np.mean(top1):.1f} ({min(top1):.1f} - {max(top1):.1f}) |" in row and "|     2 |" in row


@pytest.mark.slow
def test_two_stream_demo_trains_flow_and_fuses_the_streams(tmp_path, capsys):
    options = {"clips_per_class": 3, "num_frames": 20, "height": 40, "width": 52, "workers": 1}
    overrides = [*TINY, "test.acceleration=fp32"]  # no probe of the fastest path: not what this test is about
    results = run_demo(
        two_stream=True, out_dir=tmp_path / "runs", data_dir=tmp_path / "data", overrides=overrides, dataset_options=options
    )
    rgb, flow, fusion = results
    assert [(r.model, r.modality) for r in results] == [
        ("artnet_r18_d", "RGB"),
        ("artnet_r18_d", "Flow"),
        ("artnet_r18_d", "Fusion"),
    ]
    assert two_stream_table(results) in capsys.readouterr().out
    # the flow stream read flow folders (x_00001.jpg ...) computed at the recipe's frame size, one per video
    flow_root = tmp_path / "data-flow-farneback-40x52"
    assert len(list(flow_root.glob("*/*/x_00019.jpg"))) == 12 * 3 and not list(flow_root.glob("*/*/x_00020.jpg"))
    saved = load_config(tmp_path / "runs" / "artnet_r18_d_flow" / "config.yaml")
    assert saved.data.clip.normalization == "flow" and saved.data.root == str(flow_root)
    # the fusion row is the weighted mean of the two tests' logits
    rgb_scores, flow_scores = (
        np.load(tmp_path / "runs" / run / "test_25x1" / "scores.npz") for run in ("artnet_r18_d", "artnet_r18_d_flow")
    )
    fused = (TSN_WEIGHTS[0] * rgb_scores["scores"] + TSN_WEIGHTS[1] * flow_scores["scores"]) / sum(TSN_WEIGHTS)
    assert fusion.top1 == 100 * np.mean(fused.argmax(axis=1) == rgb_scores["labels"])
    assert fusion.train_seconds == rgb.train_seconds + flow.train_seconds


def test_the_flow_of_a_shared_dataset_waits_for_the_process_that_holds_it(tmp_path):
    """Two `demo --two-stream` at once on one cache: the flow is made by one process at a time."""
    dataset = generate(tmp_path / "data", seed=0, workers=1, clips_per_class=2, num_frames=8, height=40, width=52)
    script = "import sys; from artnet.data.synthetic import load; from artnet.demo import demo_flow; print(demo_flow(load(sys.argv[1]), (40, 52)))"
    flow_root = tmp_path / "data-flow-farneback-40x52"
    with folder_lock(dataset.root):  # another process, making the flow
        maker = subprocess.Popen([sys.executable, "-c", script, str(dataset.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert any("another process is writing here; waiting for it" in line for line in iter(maker.stderr.readline, ""))
        assert not flow_root.exists()
    out, err = maker.communicate(timeout=120)
    assert maker.returncode == 0, err
    assert out.strip() == str(flow_root)
    assert len(list(flow_root.glob("*/*/x_00007.jpg"))) == 12 * 2 and (flow_root / "source.json").is_file()
