"""Fine-tuning with TSN segments, BN modes and the precision / memory-format switches, on real videos."""

import pytest
import torch
from torch._dynamo.utils import counters as dynamo_counters

from artnet.engine.acceleration import Acceleration
from artnet.engine.checkpoint import load_checkpoint
from artnet.engine.config import load_config
from artnet.engine.monitor import read_log
from artnet.engine.train import train
from artnet.errors import ConfigError

from .conftest import TINY_CONFIG, tiny_overrides


def _subset_list(synthetic, tmp_path, names):
    """A list-format dataset of a few classes of the built-in one (upstream `<path> <frames> <label>`)."""
    labels = {synthetic.label(n): i for i, n in enumerate(names)}
    lines = [f"{path.relative_to(synthetic.root)} 20 {labels[label]}" for path, label in synthetic.clips("train") if label in labels]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    return ["data.format=list", f"data.annotations={tmp_path / 'list.txt'}", f"data.classes={tmp_path / 'classes.txt'}"]


def test_tsn_finetuning_recreates_the_head_and_keeps_the_rest(synthetic, reference_run, tmp_path, capsys):
    run_dir = tmp_path / "finetune"
    config = load_config(
        TINY_CONFIG,
        tiny_overrides(synthetic, run_dir, f"train.init={reference_run / 'final.pt'}", "data.clip.num_segments=2", "train.bn=partial")
        + _subset_list(synthetic, tmp_path, ["Striped", "Rising", "Falling"])
        + ["solver.max_iter=2", "solver.lr_steps=[1]", "solver.batch_size=4", "train.deterministic=false", "model.dropout=0.5", "solver.clip_grad_norm=40"],
    )
    train(config)
    assert "classifier fc re-created (12 -> 3 classes)" in capsys.readouterr().out
    tuned = load_checkpoint(run_dir / "final.pt")
    source = load_checkpoint(reference_run / "final.pt")["state_dict"]
    assert tuned["state_dict"]["fc.weight"].shape == (3, 64) and tuned["classes"] == ["Striped", "Rising", "Falling"]
    # partial BN: every BN but the first keeps the source's statistics and affine parameters
    assert torch.equal(tuned["state_dict"]["norm.running_mean"], source["norm.running_mean"])
    assert torch.equal(tuned["state_dict"]["layer2.0.norm_in.weight"], source["layer2.0.norm_in.weight"])
    assert not torch.equal(tuned["state_dict"]["stem.appearance_bn.running_mean"], source["stem.appearance_bn.running_mean"])
    assert not torch.equal(tuned["state_dict"]["layer1.0.conv_a.weight"], source["layer1.0.conv_a.weight"])


@pytest.mark.parametrize(
    "switches",
    [
        ["train.precision=bf16"],
        ["train.precision=bf16", "train.channels_last=true"],
        ["train.precision=fp16"],
        ["train.channels_last=true"],
        pytest.param(["train.compile=true"], marks=pytest.mark.slow),  # TorchInductor builds C++ kernels: ~40 s cold
    ],
    ids=lambda s: "+".join(x.split("=")[0].split(".")[1] + "=" + x.split("=")[1] for x in s),
)
def test_precision_and_memory_format_switches_train_on_cpu(synthetic, tmp_path, switches):
    run_dir = tmp_path / "run"
    config = load_config(TINY_CONFIG, tiny_overrides(synthetic, run_dir, "solver.max_iter=2", "solver.lr_steps=[1]", "train.deterministic=false", *switches))
    try:
        Acceleration(config.train.precision, config.train.channels_last).check_training("cpu")
    except ConfigError as refusal:  # a CPU whose kernels compute wrong gradients in this precision
        with pytest.raises(ConfigError, match="cannot train on this CPU"):
            train(config)
        assert not (run_dir / "log.jsonl").exists()
        pytest.skip(f"refused, as it should be: {refusal}")
    graphs_before = dynamo_counters["stats"]["unique_graphs"]
    result = train(config)
    compiled = dynamo_counters["stats"]["unique_graphs"] > graphs_before
    assert compiled == ("train.compile=true" in switches)
    losses = [e["loss"] for e in read_log(run_dir / "log.jsonl") if e["kind"] == "train"]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)
    assert result["metrics"]["videos"] == 12
    weights = load_checkpoint(run_dir / "final.pt")["state_dict"]
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
