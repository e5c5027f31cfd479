"""Model folders (Hugging Face layout) and create_model(pretrained=...): round trips, torch.hub, no pickle, clear errors."""

import json
import pickle

import pytest
import torch

from artnet import create_model
from artnet.cli import main
from artnet.data import ClipSpec
from artnet.data.clip import FlipSettings
from artnet.engine.auto_acceleration import probe_clips
from artnet.engine.checkpoint import flip_settings, load_checkpoint, model_payload, save_checkpoint
from artnet.errors import CheckpointError, ConfigError
from artnet.interop.caffemodel import read_caffemodel
from artnet.interop.convert import convert_caffemodel
from artnet.interop.hub import ModelFolder
from artnet.models import list_models

from ..conftest import REFERENCE, ROOT, calibrated_model

CLIP = ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32, normalization="caffe_rgb")
CLASSES = ["walk", "run", "jump", "swim"]
FLIP = FlipSettings(flip_label_map=[["walk", "run"]])  # trained with a flip label map: its test views follow it
SMALL = {"width_mult": 0.125, "depths": [1, 1, 1, 1]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of a small ARTNet, and the model it holds."""
    model = calibrated_model("artnet_r18_d", CLIP, len(CLASSES), dropout=0.3, **SMALL)
    path = save_checkpoint(tmp_path_factory.mktemp("checkpoint") / "model.pt", model_payload(model, CLASSES, CLIP, FLIP))
    return path, model


def logits(model, seed=3):
    with torch.inference_mode():
        return model.eval()(probe_clips(CLIP, batch=2, seed=seed))


def test_checkpoint_to_model_folder_to_create_model(trained, tmp_path, capsys, monkeypatch):
    path, model = trained
    folder = tmp_path / "artnet-small"
    assert main(["export", str(path), "--format", "hf", "--out", str(folder)]) == 0
    assert "tensors read back equal from model.safetensors" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == {"name": "artnet_r18_d", "options": dict(model.options)}
    assert config["classes"] == CLASSES and ClipSpec.from_dict(config["clip"]) == CLIP
    assert FlipSettings.from_dict(config["flip"]) == FLIP and flip_settings(load_checkpoint(folder)) == FLIP

    def no_pickle(*args, **kwargs):
        raise AssertionError("a model folder was read with pickle")

    with monkeypatch.context() as patched:
        for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
            patched.setattr(module, name, no_pickle)
        loaded = create_model("artnet_r18_d", pretrained=folder)
    assert torch.equal(logits(loaded), logits(model))
    assert loaded.pretrained_cfg.clip == CLIP and loaded.pretrained_cfg.classes == tuple(CLASSES)
    assert loaded.pretrained_cfg.num_classes == 4 and loaded.options == model.options
    assert torch.equal(logits(create_model("artnet_r18_d", pretrained=str(path))), logits(model))  # the checkpoint file itself

    # The same through huggingface_hub's mixin, and a model made in Python saved as a folder of its own
    again = ModelFolder.from_pretrained(str(folder))
    assert again.config["classes"] == CLASSES and torch.equal(logits(again.model()), logits(model))
    ModelFolder.from_model(loaded).save_pretrained(tmp_path / "resaved")
    resaved = create_model("artnet_r18_d", pretrained=tmp_path / "resaved")
    assert torch.equal(logits(resaved), logits(model)) and resaved.pretrained_cfg.classes == tuple(CLASSES)

    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: artnet" in card and "pipeline_tag: video-classification" in card
    assert (
        "(N, 3, 8, 32, 32)" in card and "`caffe_rgb`" in card and "4 classes" in card and "`walk`, `run`, `jump`, `swim`" in card
    )
    assert "No measurement of these weights was recorded" in card


def test_a_local_model_folder_loads_with_the_network_blocked(trained, tmp_path, monkeypatch):
    import socket

    import huggingface_hub.constants

    path, model = trained
    folder = tmp_path / "offline"
    ModelFolder.from_checkpoint(path).save_pretrained(folder)

    def refuse(*args, **kwargs):
        raise OSError("the network is blocked in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read when huggingface_hub was imported
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("huggingface.co", 443))
    with pytest.raises(OSError, match="blocked"):
        socket.socket().connect(("127.0.0.1", 9))

    for location in (folder, str(folder)):
        assert torch.equal(logits(ModelFolder.from_pretrained(location).model()), logits(model))
        loaded = create_model("artnet_r18_d", pretrained=location)
        assert torch.equal(logits(loaded), logits(model)) and loaded.pretrained_cfg.classes == tuple(CLASSES)


def test_num_classes_replaces_the_head_as_fine_tuning_does(trained):
    path, model = trained
    tuned = create_model("artnet_r18_d", pretrained=path, num_classes=7, dropout=0.5)
    same = create_model("artnet_r18_d", checkpoint_path=path, num_classes=7, dropout=0.5)  # timm's spelling
    assert tuned.fc.out_features == 7 and tuned.pretrained_cfg.classes == () and tuned.pretrained_cfg.num_classes == 7
    assert tuned.options == {**model.options, "num_classes": 7, "dropout": 0.5} and tuned.dropout.p == 0.5
    own, loaded = model.state_dict(), tuned.state_dict()
    assert all(torch.equal(own[k], loaded[k]) for k in own if not k.startswith("fc."))
    with torch.inference_mode():
        assert torch.equal(tuned.eval().features(probe_clips(CLIP, 1)), model.eval().features(probe_clips(CLIP, 1)))
    same_state = same.state_dict()
    assert same.options == tuned.options and all(torch.equal(same_state[k], loaded[k]) for k in loaded if not k.startswith("fc."))


def test_torch_hub_loads_every_variant_from_the_repository(trained, tmp_path):
    path, model = trained
    loaded = torch.hub.load(str(ROOT), "artnet_r18_d", source="local", pretrained=str(path))
    assert torch.equal(logits(loaded), logits(model))
    for name in list_models():
        fresh = torch.hub.load(str(ROOT), name, source="local", num_classes=5, width_mult=0.125)
        assert fresh.variant == name and fresh.fc.out_features == 5


def test_weights_that_do_not_fit_are_one_line_errors(trained, tmp_path, monkeypatch):
    path, _ = trained
    with pytest.raises(CheckpointError, match=r"model.pt: weights of artnet_r18_d, not c3d_r18$"):
        create_model("c3d_r18", pretrained=path)
    with pytest.raises(CheckpointError, match="weights do not fit artnet_r18_d: stem.appearance.weight has shape"):
        create_model("artnet_r18_d", pretrained=path, width_mult=0.25)
    with pytest.raises(ConfigError, match="artnet hosts no weights"):
        create_model("artnet_r18_d", pretrained=True)
    with pytest.raises(ConfigError, match="name different weights"):
        create_model("artnet_r18_d", pretrained=path, checkpoint_path=tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"nowhere/final.pt: no such checkpoint file or model folder$"):
        create_model("artnet_r18_d", pretrained="nowhere/final.pt")

    folder = tmp_path / "folder"
    main(["export", str(path), "--format", "hf", "--out", str(folder)])
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors: not readable safetensors"):
        load_checkpoint(folder)
    (folder / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match="config.json: not the config of an artnet model folder"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match=f"{tmp_path}: not a model folder \\(no config.json\\)"):
        load_checkpoint(tmp_path)

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network here: the Hub path, offline
    with pytest.raises(
        CheckpointError, match="someone/artnet-ucf101: no such checkpoint file or model folder, nor a Hugging Face Hub"
    ):
        create_model("artnet_r18_d", pretrained="someone/artnet-ucf101")


def test_converted_caffe_weights_go_straight_to_a_model_folder(released_caffemodel, tmp_path, capsys):
    prototxt = REFERENCE / "models/112_c3d_resnet_18_deploy.prototxt"
    caffemodel = tmp_path / "112_c3d_resnet_18_kinetics.caffemodel"  # as the release names it
    caffemodel.write_bytes(released_caffemodel("models/112_c3d_resnet_18_deploy.prototxt", "c3d_r18").read_bytes())
    folder = tmp_path / "c3d_kinetics"
    argv = ["convert", "--prototxt", str(prototxt), "--caffemodel", str(caffemodel), "--model", "c3d_r18", "--out", f"{folder}/"]
    assert main(argv) == 0
    assert f"wrote {folder}/" in capsys.readouterr().out
    config = json.loads((folder / "config.json").read_text())
    assert config["converted_from"]["caffemodel"] == caffemodel.name
    assert config["paper"] == {
        "recipe": "kinetics/c3d_r18",
        "table": "Table 2",
        "top1": 65.6,
        "top5": 85.7,
        "released": "112_c3d_resnet_18_kinetics.caffemodel",
    }
    card = (folder / "README.md").read_text()
    assert "The paper reports 65.6 / 85.7 (top-1 / top-5, %) for this recipe (`kinetics/c3d_r18`, Table 2)" in card
    assert "Converted with `artnet convert` from the released Caffe weights" in card

    converted = convert_caffemodel(prototxt, read_caffemodel(caffemodel), "c3d_r18").model
    loaded = create_model("c3d_r18", pretrained=folder)
    clip = torch.randn(1, 3, 16, 112, 112, generator=torch.Generator().manual_seed(0)) * 60
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(clip), converted.eval()(clip))
    assert loaded.pretrained_cfg.clip == ClipSpec() and len(loaded.pretrained_cfg.classes) == 400
