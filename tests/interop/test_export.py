"""ONNX and TorchScript exports of every variant: run by onnxruntime and torch.jit.load, the same logits as PyTorch."""

import json
import re

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from artnet import create_model
from artnet.cli import main
from artnet.data import ClipSpec
from artnet.engine.auto_acceleration import probe_clips
from artnet.engine.checkpoint import clip_spec, load_checkpoint, model_from_checkpoint, model_payload, save_checkpoint
from artnet.errors import CheckpointError
from artnet.interop.export import SANE_LOGIT, TOLERANCE, VERIFY_BATCHES, export_model, logit_bound, read_metadata
from artnet.models import list_models

from ..conftest import calibrated_model
from ..engine.conftest import cli

CLIP = ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32)
CLASSES = ["walk", "run", "jump", "swim", "climb"]


def small_model(name: str, clip: ClipSpec = CLIP, **options) -> torch.nn.Module:
    return calibrated_model(name, clip, len(CLASSES), width_mult=0.125, **options)


def run_onnx(path, clips: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"clips": clips.numpy()})[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_variant_exports_to_onnx_and_torchscript_with_the_same_logits(name, tmp_path):
    model = small_model(name)
    # Clips the BN statistics were calibrated on (a random clip can drive stacked relation blocks' squares far
    # out of range), at a batch size neither export was traced or verified at.
    clips = probe_clips(CLIP, batch=3, seed=1)
    with torch.inference_mode():
        expected = model(clips).numpy()
    assert 1e-3 < np.abs(expected).max() < 1e3

    verification = export_model(model, CLASSES, CLIP, "onnx", tmp_path / "model.onnx")
    assert verification.passed and verification.max_abs_difference <= TOLERANCE
    assert np.abs(run_onnx(tmp_path / "model.onnx", clips) - expected).max() <= TOLERANCE

    export_model(model, CLASSES, CLIP, "torchscript", tmp_path / "model.pt")
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.inference_mode():
        assert np.abs(loaded(clips).numpy() - expected).max() <= TOLERANCE
        assert loaded(clips[:1]).shape == (1, len(CLASSES))


def test_cli_exports_a_checkpoint_with_its_input_contract_at_a_named_opset(tmp_path, capsys):
    clip = CLIP.replace(normalization="kinetics")
    model = small_model("c3d_r18", clip, depths=[1, 1, 1, 1])
    checkpoint = save_checkpoint(tmp_path / "model.pt", model_payload(model, CLASSES, clip))
    onnx_path, torchscript_path = tmp_path / "c3d.onnx", tmp_path / "c3d.ts"

    assert main(["export", str(checkpoint), "--format", "onnx", "--opset", "20", "--out", str(onnx_path)]) == 0
    printed = capsys.readouterr().out
    assert (
        "verified with onnxruntime" in printed
        and "(opset 20): max |exported - PyTorch| = " in printed
        and f"wrote {onnx_path}" in printed
    )
    proto = onnx.load(str(onnx_path))
    assert [(o.domain, o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [("", 20)]
    (clips_input,) = proto.graph.input
    dims = clips_input.type.tensor_type.shape.dim
    assert clips_input.name == "clips" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 8, 32, 32]
    assert proto.graph.output[0].name == "logits"

    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(torchscript_path)]) == 0
    assert "verified with torch.jit.load" in capsys.readouterr().out
    for path in (onnx_path, torchscript_path):
        info = read_metadata(path)
        assert ClipSpec.from_dict(info["clip"]) == clip and info["classes"] == CLASSES
        assert info["model"] == {"name": "c3d_r18", "options": dict(model.options)}

    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(tmp_path / "x.pt"), "--opset", "17"]) == 2
    assert "--opset is an option of --format onnx" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, name", [("torchscript", "c3d.ts"), ("onnx", "c3d.onnx"), ("hf", "c3d-folder")])
def test_cli_replaces_an_export_only_when_asked_and_a_failed_write_leaves_the_previous_one(tmp_path, capsys, fmt, name):
    model = small_model("c3d_r18", depths=[1, 1, 1, 1])
    checkpoint = save_checkpoint(tmp_path / "model.pt", model_payload(model, CLASSES, CLIP))
    out = tmp_path / name
    previous = {out / "config.json": b"{}", out / "model.safetensors": b"old weights"} if fmt == "hf" else {out: b"old model"}
    for path, content in previous.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    export = ["export", str(checkpoint), "--format", fmt, "--out", str(out)]
    assert main(export) == 2
    refusal = "a folder with files in it; --force writes into it" if fmt == "hf" else "exists; --force replaces it"
    assert capsys.readouterr() == ("", f"artnet export: error: {out}: {refusal}\n")

    # a file size limit makes the write fail as a full disk does: the previous files stay, no temporary file is left
    result = cli(*export, "--force", file_limit=4096, check=False)
    kept = "the files that were there are unchanged" if fmt == "hf" else "the previous file is unchanged"
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"artnet export: error: {out}: not written (File too large); {kept}"
    assert {path: path.read_bytes() for path in previous} == previous
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["model.pt", name, *(p.name for p in previous if p != out)])

    assert main([*export, "--force"]) == 0
    written = json.loads((out / "config.json").read_text()) if fmt == "hf" else read_metadata(out)
    assert written["classes"] == CLASSES


def test_an_opset_the_exporter_cannot_write_is_refused(tmp_path):
    model = small_model("c2d_r18", depths=[1, 1, 1, 1])
    with pytest.raises(CheckpointError, match="ONNX opset 11: .* could only write opset 18; ask for 18 or above"):
        export_model(model, CLASSES, CLIP, "onnx", tmp_path / "old.onnx", opset=11)
    assert list(tmp_path.iterdir()) == []


def test_flow_models_export_with_two_input_channels(tmp_path):
    clip = CLIP.replace(normalization="flow")
    model = small_model("artnet_r18_d", clip, depths=[1, 1, 1, 1])
    export_model(model, CLASSES, clip, "torchscript", tmp_path / "flow.pt")
    assert ClipSpec.from_dict(read_metadata(tmp_path / "flow.pt")["clip"]).channels == 2
    with torch.inference_mode():
        assert torch.jit.load(str(tmp_path / "flow.pt"))(probe_clips(clip, batch=1)).shape == (1, len(CLASSES))


def test_an_export_that_cannot_be_checked_is_not_written(tmp_path):
    """A network with fresh BN statistics gives infinite logits on real-scale clips: nothing to compare."""
    model = create_model("artnet_r18_d", width_mult=0.125, num_classes=5).eval()
    with pytest.raises(CheckpointError, match="not finite"):
        export_model(model, CLASSES, CLIP, "torchscript", tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_trained_checkpoint_is_verified_within_the_bound_it_prints(reference_run, tmp_path, capsys):
    """The tiny recipe's 9-iteration run: its logits on full-range random pixels reach 1e4 and more, where fp32
    cannot hold 1e-4; the export is verified on low-contrast clips and says which bound it applied."""
    checkpoint = reference_run / "final.pt"
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    printed = re.search(
        r"max \|exported - PyTorch\| = (\S+), within (\S+) = 1e-05 x the largest \|logit\| (\S+) \(above 10, .*\), "
        r"on batches of 1 and 2 low-contrast \(mid-grey \+-8\) random clips$",
        line,
    )
    assert printed, line
    difference, bound, largest = map(float, printed.groups())
    assert difference <= bound and bound == pytest.approx(logit_bound(largest), rel=0.06)  # as printed: 2 and 3 digits

    # The figures are those of the clips named: recomputed from the file and the checkpoint
    payload = load_checkpoint(checkpoint)
    model, clip = model_from_checkpoint(payload).eval(), clip_spec(payload, str(checkpoint))
    full_range = probe_clips(clip, batch=1, seed=1)
    with torch.inference_mode():
        assert np.abs(model(full_range).numpy()).max() > 100 * SANE_LOGIT
    gaps, logits = [], []
    for batch in VERIFY_BATCHES:
        clips = probe_clips(clip, batch=batch, seed=batch, contrast=8)
        with torch.inference_mode():
            expected = model(clips).numpy()
        gaps.append(np.abs(run_onnx(out, clips) - expected).max())
        logits.append(np.abs(expected).max())
    assert max(gaps) == pytest.approx(difference, rel=0.06, abs=1e-7) and max(logits) == pytest.approx(largest, rel=6e-3)


def test_an_export_that_differs_from_pytorch_is_refused_and_not_written(tmp_path, capsys, monkeypatch):
    """Tracing keeps one branch of Python control flow: a model branching on its input's values exports wrong."""
    model = small_model("c3d_r18", depths=[1, 1, 1, 1])

    class BranchesOnValues(type(model)):
        def forward(self, clips):
            logits = super().forward(clips)
            return logits + 1.0 if clips.mean() > 0 else logits  # traced on zeros; clips normalised as caffe: mean > 0

    model.__class__ = BranchesOnValues
    out = tmp_path / "model.pt"
    with pytest.raises(CheckpointError, match=r"model.pt: not written: the exported model differs from PyTorch \(torch.jit"):
        export_model(model, CLASSES, CLIP, "torchscript", out)
    assert list(tmp_path.iterdir()) == []

    checkpoint = save_checkpoint(tmp_path / "ckpt" / "model.pt", model_payload(model, CLASSES, CLIP))
    monkeypatch.setattr("artnet.engine.checkpoint.model_from_checkpoint", lambda payload, source: model)
    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{TOLERANCE:g} (fp32; largest |logit|" in error
    assert re.search(r"max \|exported - PyTorch\| = 1\.0e\+00, beyond 0.0001 ", error), error
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "ckpt"]
