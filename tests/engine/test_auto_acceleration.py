"""``acceleration: auto``: the choice on machines of both kinds (a fake clock), the probe's batch, the
accuracy gate, the per-machine cache of the speeds and the gate on the weights at hand, the real probe on a
small model, and the one line ``artnet test`` and ``artnet predict`` print."""

import json
import re
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from artnet import create_model
from artnet.data import ClipSpec
from artnet.engine import auto_acceleration as auto
from artnet.engine.acceleration import Acceleration
from artnet.errors import ConfigError
from artnet.machine import cache_dir

from .conftest import TINY_CONFIG, cli, tiny_overrides

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
        self.batches = []  # (stage, clips in the call)

    def __call__(self, stage, accel, call):
        self.calls.append((stage, accel.name))
        out = call()
        self.batches.append((stage, len(out)))
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
    """Logits that are the small difference of two large products: bf16's rounding of each swamps it.
    ``cancel=False``: the same model, with weights whose products do not cancel (bf16 is close to fp32)."""

    def __init__(self, features=3 * 8 * 32 * 32, classes=5, cancel=True):
        super().__init__()
        self.a = nn.Linear(features, classes, bias=False)
        self.b = nn.Linear(features, classes, bias=False)
        if cancel:
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
    assert "round" in clock.stages("bf16") and bf16.speedup == pytest.approx(2.5)  # timed all the same: other weights may pass
    assert "bf16 2.50x: rel. error" in choice.reason


def test_cached_speeds_are_gated_again_on_the_weights_at_hand(clips, cache):
    """Speeds are of the architecture, errors of the weights: weights that fail bf16's gate (as random
    ones do) do not keep another model of the same architecture (a trained one) in fp32, nor the reverse."""
    probed = FakeClock(NATIVE_BF16)
    first = auto.choose_acceleration(Cancelling(), clips, cache=cache, time_call=probed)
    assert first.acceleration == Acceleration(channels_last=True)  # bf16 fails the gate on these weights
    again = FakeClock(AVX2_ONLY)  # a clock that would pick otherwise: the speeds must come from the cache
    second = auto.choose_acceleration(Cancelling(cancel=False), clips, cache=cache, time_call=again)
    assert second.acceleration == Acceleration("bf16", channels_last=True) and again.calls == []
    assert second.reason.startswith("acceleration auto: bf16 + channels_last, 2.94x fp32 at rel. error ")
    assert f"speeds cached in {cache} (probed at batch 2 on " in second.reason
    assert "accuracy checked on these weights" in second.reason
    bf16 = {t.acceleration.name: t for t in second.trials}["bf16 + channels_last"]
    assert bf16.verdict == "ok" and 0 < bf16.error <= auto.MAX_ERROR
    third = auto.choose_acceleration(Cancelling(), clips, cache=cache, time_call=again)
    assert third.acceleration == Acceleration(channels_last=True) and again.calls == []
    assert "bf16 + channels_last 2.94x: rel. error" in third.reason


def test_the_probe_runs_at_the_runs_batch_or_at_what_fits_its_time(model, clips, cache, monkeypatch):
    """A batch of 2 misjudges a run of 50 views (autocast casts the weights on every call); the probe
    takes the run's batch unless one fp32 call of it would overrun PROBE_CALL_S (the clock: 0.01 s for 2 clips)."""
    monkeypatch.setattr(auto, "PROBE_CALL_S", 0.05)  # 10 clips fit
    for batch, timed in [(6, 6), (50, 10)]:
        clock = FakeClock(NATIVE_BF16)
        choice = auto.choose_acceleration(model, clips, batch=batch, cache=cache, rounds=2, time_call=clock)
        assert {n for stage, n in clock.batches if stage == "size"} == ({2} if batch > 2 else set())
        assert {n for stage, n in clock.batches if stage in ("first call", "round")} == {timed}
        assert re.search(rf"; probed in \d+ s at batch {timed}, speeds cached in {re.escape(str(cache))}$", choice.reason)
        assert f"input {batch}x3x8x32x32" in auto.probe_key(model, clips, batch=batch)
    assert len(json.loads(cache.read_text())["choices"]) == 2  # keyed by the run's batch
    assert auto.repeat_clips(clips, 5)[[0, 2, 4]].equal(clips[[0, 0, 0]]) and auto.repeat_clips(clips, 5).shape[0] == 5


def test_relative_error_is_the_norm_of_the_difference_over_the_norm_of_fp32():
    reference = torch.tensor([[3.0, 4.0]])
    assert auto.relative_error(torch.tensor([[3.0, 4.5]]), reference) == pytest.approx(0.1)
    assert auto.relative_error(torch.tensor([[float("inf"), 4.0]]), reference) != auto.relative_error(reference, reference)


def test_the_choice_is_cached_per_machine_and_torch_version(model, clips, cache, monkeypatch):
    first = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=FakeClock(NATIVE_BF16))
    again = FakeClock(AVX2_ONLY)
    second = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=again)
    assert again.calls == [] and second.acceleration == first.acceleration
    assert "speeds cached in" in second.reason and "ARTNET_REPROBE=1 probes again" in second.reason

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


SPEEDS = {name: {"speedup": 1.0} for name in ("fp32", "fp32 + channels_last", "bf16", "bf16 + channels_last")}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"format": 2, "choices": []}',
        json.dumps({"format": 2, "choices": {"KEY": {"speeds": {**SPEEDS, "bf61": {"speedup": 2.0}}, "probed": "then"}}}),
        json.dumps({"format": 2, "choices": {"KEY": {"speeds": {**SPEEDS, "bf16": {"speedup": "fast"}}, "probed": "then"}}}),
        json.dumps({"format": 2, "choices": {"KEY": {"speeds": {**SPEEDS, "fp32": {"verdict": "slow"}}, "probed": ""}}}),
        '{"format": 1, "choices": {"KEY": {"acceleration": "fp32", "summary": "fp32"}}}',  # format 1 kept a choice
    ],
    ids=["not-json", "no-entries", "other-candidates", "bad-speed", "fp32-dropped", "format-1"],
)
def test_a_corrupt_cache_is_ignored_and_rewritten(model, clips, cache, content):
    if "{not json" not in content:
        content = json.dumps(json.loads(content)).replace("KEY", auto.probe_key(model, clips).replace('"', '\\"'))
    cache.write_text(content)
    clock = FakeClock(NATIVE_BF16)
    choice = auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=clock)
    assert clock.calls and choice.acceleration == Acceleration("bf16", channels_last=True)
    entry = json.loads(cache.read_text())["choices"][auto.probe_key(model, clips)]
    assert entry["speeds"]["bf16 + channels_last"]["speedup"] == pytest.approx(1 / 0.34)
    assert entry["speeds"]["fp32"]["speedup"] == 1.0 and "error" not in json.dumps(entry)  # errors are of the weights
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary file left behind


def test_the_cache_lives_in_the_artnet_cache_dir(model, clips, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTNET_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    choice = auto.choose_acceleration(model, clips, time_call=FakeClock(NATIVE_BF16))
    assert f"cached in {tmp_path / 'cache' / 'acceleration.json'}" in choice.reason


@pytest.mark.parametrize("cached", [False, True], ids=["probe", "gate"])
def test_the_probe_leaves_the_model_as_it_was(model, clips, cache, cached):
    if cached:
        other_weights = create_model("artnet_r18_d", **SMALL)
        auto.choose_acceleration(other_weights, clips, cache=cache, rounds=2, time_call=FakeClock(NATIVE_BF16))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clock = FakeClock(NATIVE_BF16)
    auto.choose_acceleration(model, clips, cache=cache, rounds=2, time_call=clock)
    assert model.training and (clock.calls == []) == cached
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
    """On this machine's kernels: oneDNN without native bf16 (an AVX2-only CPU, or ONEDNN_MAX_CPU_ISA=AVX2)
    runs bf16 convolutions through PyTorch's reference kernel, which the kernel check must drop; with
    native bf16 (AVX512-BF16, AMX) the check must keep bf16 for the rounds."""
    started = time.perf_counter()
    choice = auto.choose_acceleration(model, clips, batch=8, cache=cache, reprobe=True)
    assert time.perf_counter() - started < 20  # a few seconds on 2 busy cores
    assert choice.acceleration.name in CHOICES and not choice.acceleration.compile
    trials = {t.acceleration.name: t for t in choice.trials}
    assert trials["fp32"].verdict == "ok" and trials[choice.acceleration.name].verdict == "ok"
    assert trials[choice.acceleration.name].error <= auto.MAX_ERROR
    assert {t.verdict for t in choice.trials} <= {"ok", "slow", "inaccurate", "failed"}
    assert choice.reason.startswith(f"acceleration auto: {choice.acceleration.name}") and " at batch 8, " in choice.reason
    bf16 = [trials["bf16"], trials["bf16 + channels_last"]]
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert all(t.verdict in ("ok", "inaccurate") and t.speedup > 0 for t in bf16), choice.reason
    else:
        assert all(t.verdict == "slow" and t.note.startswith("no fast kernel (a 3D convolution ") for t in bf16), choice.reason


@pytest.mark.slow
def test_test_and_predict_default_to_auto_and_say_so_in_one_line(synthetic, reference_run, tmp_path):
    """No acceleration setting: both commands probe (or read the cached speeds) and print one line."""
    checkpoint = Path(reference_run) / "final.pt"
    overrides = tiny_overrides(synthetic, tmp_path / "run")
    tested = cli("test", TINY_CONFIG, *overrides, "--checkpoint", checkpoint, "--out", tmp_path / "report", "--protocol", "1clip")
    video = str(synthetic.clips("test")[0][0])
    predicted = cli("predict", video, "--checkpoint", checkpoint, "--protocol", "1clip", "--workers", "0")
    for result in (tested, predicted):
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "acceleration auto:" in line]
        assert len(lines) == 1 and lines[0].startswith("acceleration auto: ") and re.search(r" at batch \d+", lines[0]), lines
    assert "acceleration auto: " in predicted.stderr  # the log's stream: stdout holds the predictions


# --- train.precision: auto ---------------------------------------------------------------------


@pytest.fixture
def right_gradients(monkeypatch):
    """The gradient check passes, whichever CPU runs the test (it fails on AVX-512 CPUs without AMX)."""
    from artnet.engine import acceleration

    monkeypatch.setattr(acceleration, "_conv_weight_gradient_agreement", lambda dtype, channels_last: 1.0)


def _parameters(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize(
    "seconds, expected, note",
    [
        (NATIVE_BF16, "bf16", None),
        (AVX2_ONLY, "fp32", "bf16: no fast kernel (a 3D convolution 100x slower than fp32)"),
        ({"fp32": 1.0, "bf16": 0.95}, "fp32", "bf16 1.05x, under the 1.10x it must gain"),
    ],
    ids=["native-bf16", "avx2-only", "bf16-barely-faster"],
)
def test_training_auto_takes_bf16_only_where_it_is_clearly_faster(model, clips, cache, right_gradients, seconds, expected, note):
    model.train()
    before = _parameters(model)
    clock = FakeClock(seconds)
    choice = auto.choose_training_precision(model, clips, cache=cache, time_call=clock)
    assert choice.acceleration == Acceleration(expected)
    assert choice.reason.startswith(f"precision auto: {expected}") and "\n" not in choice.reason
    if expected == "bf16":
        assert choice.reason.startswith("precision auto: bf16, 2.50x fp32 a training step on ")
        assert "round" in clock.stages("bf16")
    else:
        assert note in choice.reason
    assert f"cached in {cache}" in choice.reason
    # the probe trains copies: the model's weights, gradients and mode are as they were
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters()) and model.training


def test_training_auto_refuses_bf16_where_its_gradients_are_wrong(model, clips, cache, monkeypatch):
    from artnet.engine import acceleration

    monkeypatch.setattr(acceleration, "_conv_weight_gradient_agreement", lambda dtype, channels_last: 0.37)
    choice = auto.choose_training_precision(model.train(), clips, cache=cache, time_call=FakeClock(NATIVE_BF16))
    assert choice.acceleration == Acceleration("fp32")
    assert "bf16: its bf16 3D convolution computes wrong weight gradients (cosine 0.37 to fp32" in choice.reason


def test_training_auto_reads_the_cached_speeds_and_keys_them_apart_from_inference(model, clips, cache, right_gradients):
    first = auto.choose_training_precision(model.train(), clips, cache=cache, time_call=FakeClock(NATIVE_BF16))
    clock = FakeClock(AVX2_ONLY)  # would pick fp32 if it were asked
    again = auto.choose_training_precision(model, clips, cache=cache, time_call=clock)
    assert again.acceleration == first.acceleration == Acceleration("bf16") and clock.calls == []
    assert f"speeds cached in {cache} (probed at batch 2 on " in again.reason
    inference = auto.choose_acceleration(model, clips, cache=cache, time_call=FakeClock(AVX2_ONLY))
    assert inference.acceleration.precision == "fp32"  # the training entry is not read as inference speeds
    keys = json.loads(cache.read_text())["choices"]
    assert sum(key.startswith("training | ") for key in keys) == 1 and len(keys) == 2
    assert auto.choose_training_precision(model, clips, cache=cache, reprobe=True, time_call=clock).acceleration == Acceleration("fp32")


def test_real_training_probe_on_a_small_model(model, clips, cache):
    """This machine's kernels: bf16 without a fast kernel (oneDNN reports no native bf16) is dropped
    before any step; where bf16 is native, either pick may come out, said in one line."""
    choice = auto.choose_training_precision(model.train(), clips, cache=cache)
    assert choice.acceleration.precision in auto.TRAINING_PRECISIONS and not choice.acceleration.channels_last
    trials = {t.acceleration.precision: t for t in choice.trials}
    assert trials["fp32"].verdict == "ok" and trials["fp32"].speedup == 1.0
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert trials["bf16"].verdict == "slow" and choice.acceleration.precision == "fp32", choice.reason
    assert choice.reason.startswith(f"precision auto: {choice.acceleration.precision}") and " at batch 2, " in choice.reason


def test_train_with_precision_auto_records_its_pick_and_a_resumed_run_keeps_it(synthetic, tmp_path):
    run_dir = tmp_path / "auto"
    args = ("train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir, "train.precision=auto", "solver.lr_steps=[]"))
    first = cli(*args, "solver.max_iter=3")
    lines = [line for line in first.stdout.splitlines() if line.startswith("precision auto: ")]
    assert len(lines) == 1, first.stdout
    picked = lines[0].removeprefix("precision auto: ").split(",")[0].split(" ")[0]
    assert picked in auto.TRAINING_PRECISIONS
    assert f"precision: {picked}\n" in (run_dir / "config.yaml").read_text()
    resumed = cli(*args, "solver.max_iter=6")
    assert f"precision auto: {picked}, as the run was started" in resumed.stdout and "resumed from" in resumed.stdout
