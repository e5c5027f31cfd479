"""``predict`` goes the way ``test`` goes: the dataset, DataLoader workers, the acceleration switches."""

import os

import pytest
import torch
from torch import nn

from artnet.data.datasets import VideoDataset
from artnet.engine.predict import predict


@pytest.fixture
def decoding_pids(monkeypatch, tmp_path):
    """The processes that decode videos, written to a file (DataLoader workers are other processes)."""
    log = tmp_path / "pids"
    load = VideoDataset.load

    def logged(self, index, **kwargs):
        with open(log, "a") as file:
            file.write(f"{os.getpid()}\n")
        return load(self, index, **kwargs)

    monkeypatch.setattr(VideoDataset, "load", logged)
    return lambda: [int(line) for line in log.read_text().split()]


def test_a_folder_of_videos_is_decoded_by_workers(synthetic, reference_run, decoding_pids):
    folder = synthetic.root / synthetic.classes[4].name
    checkpoint = str(reference_run / "final.pt")
    with_workers = predict([str(folder)], checkpoint, protocol="1clip", num_workers=2)
    pids = decoding_pids()
    assert len(pids) == len(with_workers) == 3 and os.getpid() not in pids
    in_process = predict([str(folder)], checkpoint, protocol="1clip", num_workers=0)
    assert [(p.path, p.labels, p.scores) for p in in_process] == [(p.path, p.labels, p.scores) for p in with_workers]


def test_the_acceleration_switches_reach_the_model(synthetic, reference_run):
    seen = []

    def record(module, inputs, output):
        if isinstance(module, nn.Conv3d):
            seen.append((output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last_3d)))

    video = str(synthetic.clips("test")[0][0])
    checkpoint = str(reference_run / "final.pt")
    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        exact = predict([video], checkpoint, protocol="1clip", num_workers=0, acceleration="fp32")
        assert seen and all(dtype == torch.float32 and not last for dtype, last in seen)
        seen.clear()
        fast = predict([video], checkpoint, protocol="1clip", num_workers=0, acceleration="bf16+channels_last")
    finally:
        handle.remove()
    assert seen and all(dtype == torch.bfloat16 for dtype, _ in seen) and seen[0][1]  # the stem reads a channels_last clip
    assert fast[0].labels[0] == exact[0].labels[0]


def unmirrored(reference_run, tmp_path, *, written_before_flip: bool = False):
    """The reference run's model, recorded as trained with data.flip=false."""
    from artnet.engine.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(reference_run / "final.pt")
    if written_before_flip:  # the settings were in the training config only
        payload.pop("flip", None)
        payload["config"]["data"]["flip"] = False
    else:
        payload["flip"] = {"flip": False, "flip_label_map": []}
    return str(save_checkpoint(tmp_path / "unmirrored.pt", payload))


@pytest.fixture
def model_views():
    """How many views the models were shown, in all."""
    from artnet.models.resnet3d import VideoResNet

    views = []

    def count(module, inputs, output):
        if isinstance(module, VideoResNet):
            views.append(len(inputs[0]))

    handle = nn.modules.module.register_module_forward_hook(count)
    yield lambda: sum(views)
    handle.remove()


@pytest.mark.parametrize("written_before_flip", [False, True])
def test_predict_mirrors_as_the_model_was_trained(synthetic, reference_run, tmp_path, model_views, written_before_flip):
    """A model trained with data.flip=false is not shown mirrored views: 25 clips x 5 crops, not x 10."""
    checkpoint = unmirrored(reference_run, tmp_path, written_before_flip=written_before_flip)
    video = str(synthetic.clips("test")[0][0])
    (prediction,) = predict([video], checkpoint, protocol="25x10", num_workers=0, acceleration="fp32")
    assert model_views() == 25 * 5 and prediction.error is None


def test_test_mirrors_as_the_model_was_trained_whatever_the_config_says(synthetic, reference_run, tmp_path, model_views, capsys):
    from artnet.engine.config import load_config
    from artnet.engine.testing import run_test

    from .conftest import TINY_CONFIG, tiny_overrides

    checkpoint = unmirrored(reference_run, tmp_path)
    test_options = ("test.num_workers=0", "test.acceleration=fp32", "test.view_batch=50")
    overrides = tiny_overrides(synthetic, tmp_path, "data.flip=true", *test_options)
    (result,) = run_test(load_config(TINY_CONFIG, overrides), checkpoint, protocol="25x10", out_dir=str(tmp_path / "report"))
    assert result.metrics.videos == 12 and model_views() == 12 * 25 * 5
    assert "mirrored as unmirrored.pt was trained, not as the config says: data.flip true -> false" in capsys.readouterr().err
