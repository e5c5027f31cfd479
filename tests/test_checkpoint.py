import os
import pickle
import resource
import stat

import pytest
import torch

from artnet import create_model
from artnet.data import ClipSpec
from artnet.engine.checkpoint import clip_spec, load_checkpoint, model_from_checkpoint, model_payload, save_checkpoint
from artnet.errors import CheckpointError, OutputError

SMALL = {"width_mult": 0.125, "depths": (1, 1, 1, 1), "num_classes": 3}


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = create_model("artnet_r18_d", **SMALL).eval()
    clip = ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32)
    path = save_checkpoint(tmp_path / "ckpt.pt", model_payload(model, ["a", "b", "c"], clip))
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed, not left behind
    checkpoint = load_checkpoint(path)
    assert checkpoint["classes"] == ["a", "b", "c"] and clip_spec(checkpoint) == clip
    rebuilt = model_from_checkpoint(checkpoint).eval()
    clip = torch.randn(1, 3, 8, 32, 32)
    torch.testing.assert_close(rebuilt(clip), model(clip))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    payload = model_payload(create_model("c3d_r18", **SMALL), ["a", "b", "c"], ClipSpec())
    other = create_model("artnet_r18_d", **SMALL)
    from artnet.engine.checkpoint import load_state

    with pytest.raises(CheckpointError, match="do not fit artnet_r18_d"):
        load_state(other, payload["state_dict"], "ckpt.pt")
    wider = create_model("c3d_r18", **{**SMALL, "num_classes": 5})
    with pytest.raises(CheckpointError, match=r"fc.weight has shape \(3, 64\), model expects \(5, 64\)"):
        load_state(wider, payload["state_dict"], "ckpt.pt")


@pytest.mark.parametrize(
    "content, what",
    [
        (b"", "an empty file"),
        (b"not a checkpoint at all", "neither the zip archive nor the pickle torch.save writes"),
        (bytes(range(256)) * 4, "neither the zip archive nor the pickle torch.save writes"),
        (b"PK\x03\x04truncated", "an incomplete zip archive: a copy or download cut short?"),
    ],
)
def test_garbage_is_not_a_pytorch_checkpoint(tmp_path, content, what):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == f"{path}: not a PyTorch checkpoint ({what})"


class _RunsACommand:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "it-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "artnet-checkpoint", "state_dict": {}, "hook": _RunsACommand(marker)}, evil)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(evil)
    assert str(error.value) == f"{evil}: refused: it contains code, not only tensors (it asks for posix.system)"
    assert not marker.exists()
    objects = tmp_path / "objects.pt"
    torch.save({"model": object()}, objects)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(objects)
    assert str(error.value) == f"{objects}: refused: it contains code, not only tensors (it asks for object)"
    # a plain Python pickle is not unpickled at all
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"hook": _RunsACommand(marker)}))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(pickled)
    assert str(error.value) == f"{pickled}: not a PyTorch checkpoint (a Python pickle, which may run code when read)"
    assert not marker.exists()


def test_no_message_advises_loading_without_weights_only(tmp_path):
    """PyTorch's own message tells the user to retry with weights_only=False: what an attacker wants."""
    evil = tmp_path / "evil.pt"
    torch.save({"hook": _RunsACommand(tmp_path / "x")}, evil)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(evil)
    assert "weights_only" not in str(error.value) and "\n" not in str(error.value)


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    """A real failed write: a file size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so write() fails with
    EFBIG) cuts the new checkpoint short, as a full disk (ENOSPC) would: the same failed write() to the code."""
    model = create_model("artnet_r18_d", **SMALL)
    path = save_checkpoint(tmp_path / "ckpt.pt", model_payload(model, ["a", "b", "c"], ClipSpec()))
    before = path.read_bytes()
    changed = create_model("artnet_r18_d", **SMALL)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))
    try:
        with pytest.raises(OutputError) as error:
            save_checkpoint(path, model_payload(changed, ["a", "b", "c"], ClipSpec()))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(error.value) == f"{path}: not written (File too large); the previous file is unchanged"
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temporary file left
    assert load_checkpoint(path)["classes"] == ["a", "b", "c"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_checkpoints_follow_the_umask_as_other_files_do(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "ckpt.pt", model_payload(create_model("c3d_r18", **SMALL), ["a", "b", "c"], ClipSpec()))
        (tmp_path / "plain.txt").write_text("a file made as any other")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask


def test_plain_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(create_model("c3d_r18", **SMALL).state_dict(), path)
    with pytest.raises(CheckpointError, match="not an artnet checkpoint"):
        load_checkpoint(path)


def test_fine_tuning_across_modalities_is_refused_on_one_line(tmp_path):
    from artnet.engine.builders import load_init_weights

    flow = ClipSpec(normalization="flow")
    rgb_run = save_checkpoint(tmp_path / "rgb.pt", model_payload(create_model("c3d_r18", **SMALL), ["a", "b", "c"], ClipSpec()))
    flow_run = save_checkpoint(
        tmp_path / "flow.pt", model_payload(create_model("c3d_r18", in_channels=2, **SMALL), ["a", "b", "c"], flow)
    )
    flow_model = create_model("c3d_r18", in_channels=2, **{**SMALL, "num_classes": 5})
    assert load_init_weights(flow_model, str(flow_run)) == [
        f"init: classifier fc re-created (3 -> 5 classes), the rest from {flow_run}"
    ]
    with pytest.raises(
        CheckpointError,
        match=rf"^{rgb_run}: weights for 3-channel clips \(normalization caffe\), but the run's model reads 2-channel clips$",
    ):
        load_init_weights(flow_model, str(rgb_run))
