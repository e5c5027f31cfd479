"""``acceleration: auto``: the choice on machines of both kinds (a fake clock), the accuracy gate,
the per-machine cache, and the real probe on a small model."""

import json
import time

import pytest
import torch
from torch import nn

from artnet import create_model
from artnet.data import ClipSpec
from artnet.engine import auto_acceleration as auto
from artnet.engine.acceleration import Acceleration
from artnet.errors import ConfigError
from artnet.machine import cache_dir

SMALL = {"width_mult": 0.125, "depths": (1, 1, 1, 1), "num_classes": 5, "dropout": 0.0}
CHOICES = {f"{p}{cl}" for p in ("fp32", "bf16", "fp16") for cl in ("", " + channels_last")}

# Seconds per call, by path: a CPU with native bf16, and an AVX2-only one (bf16 through the reference kernel).
NATIVE_BF16 = {"fp32": 1.0, "fp32 + channels_last": 0.85, "bf16": 0.4, "bf16 + channels_last": 0.34}
AVX2_ONLY = {"fp32": 1.0, "fp32 + channels_last": 0.8, "bf16": 100.0, "bf16 + channels_last": 100.0, "fp16": 100.0, "fp16 + channels_last": 100.0}


class FakeClock:
    """Runs every call for real (the gate checks its logits) but reports made-up seconds per path."""

    def __init__(self, seconds, first_call=None):
        self.seconds, self.first_call = seconds, first_call or {}
        self.calls = []

    def __call__(self, stage, accel, call):
        self.calls.append((stage, accel.name))
        out = call()
        table = self.first_call if stage == "first call" and accel.name in self.first_call else self.seconds
        return out, 0.01 * table.get(accel.name, 1.0)

    def stages(self, name):
        return {stage for stage, called in self.calls if called == name}


@pytest.fixture(autouse=True)
def one_thread():
    """A model this small gains nothing from more threads; on shared cores it loses 10x and more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model():
    return create_model("artnet_r18_d", **SMALL)


@pytest.fixture
def clips():
    return torch.randn(2, 3, 8, 32, 32)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "acceleration.json"


def test_picks_bf16_channels_last_where_bf16_is_native(model, clips, cache):
    clock = FakeClock(NATIVE_BF16)
    choice = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=clock)
    assert choice.acceleration == Acceleration("bf16", channels_last=True)
    assert choice.reason.startswith("acceleration auto: bf16 + channels_last, 2.94x fp32 at rel. error ")
    assert "\n" not in choice.reason and f"cached in {cache}" in choice.reason
    trial = {t.acceleration.name: t for t in choice.trials}["bf16 + channels_last"]
    assert trial.verdict == "ok" and 0 < trial.error <= auto.MAX_ERROR


@pytest.mark.parametrize("channels_last_seconds, expected", [(0.8, "fp32 + channels_last"), (0.95, "fp32")])
def test_keeps_fp32_where_bf16_has_no_fast_kernel(model, clips, cache, channels_last_seconds, expected):
    clock = FakeClock({**AVX2_ONLY, "fp32 + channels_last": channels_last_seconds})
    choice = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=clock)
    assert choice.acceleration == Acceleration.parse(expected)
    assert clock.stages("bf16") == {"kernel"}  # dropped after one convolution: the model never ran in bf16
    assert "bf16: no fast kernel (a 3D convolution 100x slower than fp32)" in choice.reason


def test_a_candidate_whose_first_call_is_far_slower_is_dropped_at_once(model, clips, cache):
    clock = FakeClock(NATIVE_BF16, first_call={"bf16": 40.0, "bf16 + channels_last": 40.0})
    choice = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=clock)
    assert choice.acceleration == Acceleration(channels_last=True)
    assert "round" not in clock.stages("bf16") and "first call" in clock.stages("bf16")
    assert "bf16: first call 40x as long as fp32's" in choice.reason


class Cancelling(nn.Module):
    """Logits that are the small difference of two large products: bf16's rounding of each swamps it."""

    def __init__(self, features=3 * 8 * 32 * 32, classes=5):
        super().__init__()
        self.a = nn.Linear(features, classes, bias=False)
        self.b = nn.Linear(features, classes, bias=False)
        with torch.no_grad():
            self.b.weight.copy_(self.a.weight + 1e-4 * torch.randn_like(self.a.weight))

    def forward(self, clips):
        x = clips.flatten(1)
        return self.a(x) - self.b(x)


def test_accuracy_gate_rejects_a_fast_path_whose_logits_are_off(clips, cache):
    clock = FakeClock(NATIVE_BF16)
    choice = auto.choose_acceleration(Cancelling(), clips, cache=cache, time_call=clock)
    assert choice.acceleration == Acceleration(channels_last=True)
    bf16 = {t.acceleration.name: t for t in choice.trials}["bf16"]
    assert bf16.verdict == "inaccurate" and bf16.error > auto.MAX_ERROR
    assert "round" not in clock.stages("bf16")


def test_relative_error_is_the_norm_of_the_difference_over_the_norm_of_fp32():
    reference = torch.tensor([[3.0, 4.0]])
    assert auto.relative_error(torch.tensor([[3.0, 4.5]]), reference) == pytest.approx(0.1)
    assert auto.relative_error(torch.tensor([[float("inf"), 4.0]]), reference) != auto.relative_error(reference, reference)


def test_the_choice_is_cached_per_machine_and_torch_version(model, clips, cache, monkeypatch):
    first = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=FakeClock(NATIVE_BF16))
    again = FakeClock(AVX2_ONLY)
    second = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=again)
    assert again.calls == [] and second.acceleration == first.acceleration
    assert "cached in" in second.reason and "ARTNET_REPROBE=1 probes again" in second.reason

    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another torch: its kernels may differ
    other = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=again)
    assert again.calls and other.acceleration == Acceleration(channels_last=True)
    keys = json.loads(cache.read_text())["choices"]
    assert len(keys) == 2 and sum("torch 9.9.9" in key for key in keys) == 1

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")  # a capped ISA is another machine
    assert auto.probe_key(model, clips) not in keys
    monkeypatch.setenv("ARTNET_REPROBE", "1")
    probed = FakeClock(NATIVE_BF16)
    auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=probed)
    assert probed.calls


def test_the_key_names_the_model_and_the_probe_shape(model, clips):
    key = auto.probe_key(model, clips)
    assert f"torch {torch.__version__}" in key and "input 2x3x8x32x32" in key
    assert key != auto.probe_key(model, clips[:1]) and key != auto.probe_key(Cancelling(), clips)
    assert auto.probe_key(model, clips, identity="artnet_r18_d") != key


@pytest.mark.parametrize("content", ["{not json", '{"format": 1, "choices": []}', '{"format": 1, "choices": {"KEY": {"acceleration": "bf61"}}}'])
def test_a_corrupt_cache_is_ignored_and_rewritten(model, clips, cache, content):
    cache.write_text(content.replace("KEY", auto.probe_key(model, clips).replace('"', '\\"')))
    clock = FakeClock(NATIVE_BF16)
    choice = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=clock)
    assert clock.calls and choice.acceleration == Acceleration("bf16", channels_last=True)
    entry = json.loads(cache.read_text())["choices"][auto.probe_key(model, clips)]
    assert entry["acceleration"] == "bf16 + channels_last"
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary file left behind


def test_the_cache_lives_in_the_artnet_cache_dir(model, clips, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTNET_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    choice = auto.choose_acceleration(model, clips, time_call=FakeClock(NATIVE_BF16))
    assert f"cached in {tmp_path / 'cache' / 'acceleration.json'}" in choice.reason


def test_the_probe_leaves_the_model_as_it_was(model, clips, cache):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=FakeClock(NATIVE_BF16))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
        assert value.is_contiguous(), key  # channels_last ran on a copy


def test_explicit_settings_are_used_as_set_without_probing(model, clips, cache):
    clock = FakeClock(NATIVE_BF16)
    choice = auto.resolve_acceleration("fp32+channels_last", model, clips, cache=cache, time_call=clock)
    assert choice.acceleration == Acceleration(channels_last=True) and choice.reason == "acceleration: fp32 + channels_last (as set)"
    assert clock.calls == [] and not cache.exists()
    with pytest.raises(ConfigError, match="acceleration 'bf61': unknown part 'bf61'"):
        auto.resolve_acceleration("bf61", model, clips)
    assert auto.resolve_acceleration("auto", model, clips, cache=cache, time_call=clock).acceleration.precision == "bf16"


def test_probe_clips_have_the_model_input_shape_and_scale():
    clips = auto.probe_clips(ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32), batch=3)
    assert clips.shape == (3, 3, 8, 32, 32) and clips.dtype == torch.float32
    assert 100 < clips.abs().max() < 160  # 0-255 pixels minus the Caffe means
    assert torch.equal(clips, auto.probe_clips(ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32), batch=3))


def test_real_probe_on_a_small_model(model, clips, cache):
    started = time.perf_counter()
    choice = auto.choose_acceleration(model, clips, cache=cache, reprobe=True)
    assert time.perf_counter() - started < 20  # a few seconds on 2 busy cores
    assert choice.acceleration.name in CHOICES and not choice.acceleration.compile
    trials = {t.acceleration.name: t for t in choice.trials}
    assert trials["fp32"].verdict == "ok" and trials[choice.acceleration.name].verdict == "ok"
    assert trials[choice.acceleration.name].error <= auto.MAX_ERROR
    assert {t.verdict for t in choice.trials} <= {"ok", "slow", "inaccurate", "failed"}
    assert choice.reason.startswith(f"acceleration auto: {choice.acceleration.name}")
