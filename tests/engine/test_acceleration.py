"""The speed switches: each one runs, keeps the model's parameters, and stays close to fp32."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from artnet import create_model
from artnet.engine.acceleration import PRECISIONS, Acceleration, parse_setting, relative_error
from artnet.errors import ConfigError
from artnet.models import SMART

from .conftest import ROOT, _child_env

SMALL = {"width_mult": 0.125, "depths": (1, 1, 1, 1), "num_classes": 5, "dropout": 0.0}


@pytest.fixture
def model():
    return create_model("artnet_r18_d", **SMALL)


@pytest.fixture
def clips():
    return torch.randn(2, 3, 8, 32, 32)


def forward(accel, model, clips):
    with accel.autocast("cpu"):
        return accel.apply(model)(accel.prepare_input(clips))


def test_defaults_leave_the_model_alone(model, clips):
    accel = Acceleration()
    assert accel.name == "fp32" and accel.dtype == torch.float32
    assert accel.apply(model) is model and accel.prepare_input(clips) is clips
    model.eval()
    torch.testing.assert_close(forward(accel, model, clips), model(clips), rtol=0, atol=0)


def test_channels_last_keeps_parameters_and_outputs(model, clips):
    model.eval()
    reference = model(clips)
    keys = list(model.state_dict())
    accel = Acceleration(channels_last=True)
    fast = accel.apply(model)
    assert fast is model and list(model.state_dict()) == keys
    assert model.layer1[0].conv_b.relation.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert accel.prepare_input(clips).is_contiguous(memory_format=torch.channels_last_3d)
    assert relative_error(forward(accel, model, clips), reference) < 1e-5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_inference_is_close_to_fp32(model, clips, precision):
    model.eval()
    reference = model(clips)
    accel = Acceleration(precision=precision, channels_last=True)
    with torch.no_grad():
        y = forward(accel, model, clips)
    assert y.dtype == accel.dtype  # the classifier ran under autocast, not in fp32
    assert 0 < relative_error(y, reference) < 2e-2
    assert model.fc.weight.dtype == torch.float32  # autocast: the weights stay fp32


def weight_cosines(model, reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per weight tensor (biases before BN have only rounding noise for a gradient), NaN as -1."""
    cosines = {}
    for name, p in model.named_parameters():
        if p.dim() > 1:
            cosine = F.cosine_similarity(p.grad.flatten(), reference[name].flatten(), dim=0).item()
            cosines[name] = -1.0 if math.isnan(cosine) else cosine
    return cosines


def test_bf16_training_step_reaches_every_weight_and_descends(model, clips):
    accel = Acceleration(precision="bf16")
    try:
        accel.check_training("cpu")
    except ConfigError as refusal:  # the refusal is tested on its own below
        pytest.skip(str(refusal))
    labels = torch.tensor([1, 3])
    loss_fp32 = F.cross_entropy(model(clips), labels)
    loss_fp32.backward()
    reference = torch.cat([p.grad.flatten() for p in model.parameters()])
    per_name = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    with accel.autocast("cpu"):
        loss = F.cross_entropy(accel.apply(model)(clips), labels)
    assert loss.dtype == torch.float32  # autocast keeps the loss in fp32
    accel.grad_scaler("cpu").scale(loss).backward()
    for name, p in model.named_parameters():
        assert p.dtype == p.grad.dtype == torch.float32, name  # fp32 weights, fp32 gradients
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    cosines = weight_cosines(model, per_name)
    lowest = min(cosines, key=cosines.get)  # where a wrong kernel shows, by name
    # bf16 rounding, the same direction
    assert F.cosine_similarity(grads, reference, dim=0) > 0.8, f"lowest: {lowest} at {cosines[lowest]:.2f}"
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
        assert F.cross_entropy(model(clips), labels) < loss_fp32


def bf16_training_outcome() -> dict:
    """A bf16 training step of a small C3D against fp32, per weight, or the refusal to train."""
    accel = Acceleration(precision="bf16")
    try:
        accel.check_training("cpu")
    except ConfigError as refusal:
        return {"refused": str(refusal)}
    torch.manual_seed(0)
    model = create_model("c3d_r18", **SMALL)
    clips, labels = torch.randn(2, 3, 8, 32, 32), torch.tensor([1, 3])  # conv3_x: 2 frames under 3-frame kernels
    F.cross_entropy(model(clips), labels).backward()
    reference = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with accel.autocast("cpu"):
        F.cross_entropy(model(clips), labels).backward()
    return {"cosines": weight_cosines(model, reference)}


# A child process per oneDNN ISA: this CPU's own kernels, and those of an AVX-512 CPU with bf16 but
# no AMX (a Zen 4; oneDNN cannot go above the CPU, so on an AVX2 machine both are its AVX2 kernels).
@pytest.mark.parametrize("isa", [None, "AVX512_CORE_BF16"], ids=["own-kernels", "avx512-bf16-no-amx"])
def test_bf16_training_is_right_or_refused_whatever_kernels_onednn_picks(isa):
    env = {**_child_env(), "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    script = "import json; from tests.engine.test_acceleration import bf16_training_outcome as f; print(json.dumps(f()))"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.splitlines()[-1])
    if "refused" in outcome:
        refusal = outcome["refused"]
        assert refusal.startswith("precision='bf16' cannot train on this CPU: ") and refusal.endswith("precision='fp32'")
        return
    cosines = outcome["cosines"]
    lowest = min(cosines, key=cosines.get)
    assert cosines[lowest] > 0.9, f"{lowest}: bf16 weight gradient at cosine {cosines[lowest]:.2f} to fp32, and not refused"


def test_fp32_training_is_never_refused():
    Acceleration().check_training("cpu")
    Acceleration(precision="bf16").check_training("cuda")  # the probe is of CPU kernels


def test_loss_scaling_only_for_fp16():
    assert Acceleration(precision="fp16").grad_scaler("cpu").is_enabled()
    assert not Acceleration(precision="bf16").grad_scaler("cpu").is_enabled()


@pytest.mark.slow  # TorchInductor compiles C++ on first use: about 20 s on 2 cores with a cold cache
def test_compile_wraps_the_same_module():
    block = SMART(4, 6, (3, 3, 3)).eval()
    x = torch.randn(1, 4, 4, 8, 8)
    reference = block(x)
    fast = Acceleration(compile=True).apply(block)
    assert fast is not block and fast._orig_mod is block
    with torch.no_grad():
        assert relative_error(fast(x), reference) < 1e-5


def test_from_config_reads_the_three_keys():
    accel = Acceleration.from_config({"precision": "bf16", "channels_last": True, "lr": 0.1})
    assert accel == Acceleration(precision="bf16", channels_last=True, compile=False)
    assert accel.name == "bf16 + channels_last"
    assert Acceleration.from_config({}) == Acceleration()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"precision": "fp64"}, "precision must be one of fp32, bf16, fp16, got 'fp64'"),
        ({"channels_last": "yes"}, "channels_last must be true or false, got 'yes'"),
        ({"compile": 1}, "compile must be true or false, got 1"),
    ],
)
def test_bad_settings_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        Acceleration(**options)


@pytest.mark.parametrize("accel", [Acceleration(p, cl, c) for p in PRECISIONS for cl in (False, True) for c in (False, True)])
def test_a_setting_reads_back_from_its_name(accel):
    assert Acceleration.parse(accel.name) == accel
    assert Acceleration.parse(accel.name.replace(" ", "")) == parse_setting(accel.name) == accel


def test_settings_in_any_order_and_case_default_to_fp32():
    assert Acceleration.parse("channels_last") == Acceleration(channels_last=True)
    assert Acceleration.parse("Compile + BF16+channels_last") == Acceleration("bf16", True, True)
    assert parse_setting("auto") is None and parse_setting(" Auto ") is None


@pytest.mark.parametrize(
    "setting, problem",
    [
        ("bf61+channels_last", "unknown part 'bf61'"),
        ("bf16+fp16", "two precisions"),
        ("channels_last+channels_last", "a part given twice"),
        ("fp32+", "an empty part"),
        ("auto+bf16", "'auto' stands alone"),
    ],
)
def test_bad_settings_name_the_problem_and_the_form(setting, problem):
    with pytest.raises(ConfigError) as raised:
        parse_setting(setting)
    assert str(raised.value) == (
        f"acceleration {setting!r}: {problem}; write 'auto', or a precision (fp32, bf16, fp16) "
        "and switches (channels_last, compile) joined by '+', e.g. 'bf16+channels_last'"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_autocast_is_an_error_not_a_silent_fp32_run():
    with pytest.raises(ConfigError, match="precision='fp16' is not supported on cuda"):
        Acceleration(precision="fp16").autocast("cuda")
