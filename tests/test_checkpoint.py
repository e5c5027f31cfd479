import pytest
import torch

from artnet import create_model
from artnet.data import ClipSpec
from artnet.engine.checkpoint import clip_spec, load_checkpoint, model_from_checkpoint, model_payload, save_checkpoint
from artnet.errors import CheckpointError

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


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_garbage_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(path)


def test_foreign_pickle_is_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": object()}, path)  # needs full unpickling: refused by weights_only
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


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
