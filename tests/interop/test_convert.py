"""``artnet convert``: the checkpoint it writes, RGB input, and a clear error for every blob that does not fit."""

import pytest
import torch

from artnet import create_model
from artnet.cli import main
from artnet.engine.checkpoint import load_checkpoint, model_from_checkpoint
from artnet.errors import CheckpointError, ConfigError
from artnet.interop.caffemodel import CaffeModel, LayerBlobs, parse_caffemodel, read_caffemodel, serialize_caffemodel
from artnet.interop.convert import convert_caffemodel, load_caffe_weights, read_class_names, verify_conversion
from artnet.interop.prototxt import load_net
from artnet.interop.reference import ReferenceNet

from ..conftest import REFERENCE, require
from .conftest import calibrate, randomize

C3D_DEPLOY = "models/112_c3d_resnet_18_deploy.prototxt"
ARTNET_DEPLOY = "models/112_artnet_resnet_18_deploy.prototxt"


@pytest.fixture(scope="module")
def filler_weights():
    """Caffe-initialised (filler) weights of a released deploy net, in memory: enough to test the mapping's errors."""
    made = {}

    def make(prototxt):
        if prototxt not in made:
            blobs = ReferenceNet(load_net(require(REFERENCE / prototxt))).caffe_blobs()
            made[prototxt] = CaffeModel(blobs, source="w.caffemodel")
        return CaffeModel(list(made[prototxt].layers), source="w.caffemodel")

    return make


def test_cli_writes_a_checkpoint_that_rebuilds_the_model(released_caffemodel, tmp_path, capsys):
    caffemodel = released_caffemodel(C3D_DEPLOY, "c3d_r18")
    classes = [f"action {i}" for i in range(400)]
    (tmp_path / "classes.txt").write_text("\n".join(f"  {name} " for name in classes) + "\n\n")
    out = tmp_path / "c3d.pt"
    argv = ["convert", "--prototxt", str(REFERENCE / C3D_DEPLOY), "--caffemodel", str(caffemodel), "--model", "c3d_r18"]
    assert main(argv + ["--out", str(out), "--classes", str(tmp_path / "classes.txt"), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "38 layers -> c3d_r18, 400 classes (classifier fc8), normalization caffe" in printed
    verified = next(line for line in printed.splitlines() if line.startswith("verify: "))
    assert verified.startswith("verify: max |artnet - Caffe reference| = ") and ", within " in verified, verified
    assert verified.endswith(", on 1 random clip (Gaussian, std 60, as mean-subtracted pixels)"), verified

    checkpoint = load_checkpoint(out)
    assert checkpoint["classes"] == classes
    assert checkpoint["clip"] == {
        "clip_len": 16,
        "frame_stride": 1,
        "frame_size": [128, 170],
        "crop_size": 112,
        "normalization": "caffe",
        "num_segments": 1,
    }
    assert checkpoint["model"] == {"name": "c3d_r18", "options": {"num_classes": 400, "dropout": 0.2}}
    model = model_from_checkpoint(out)
    blobs = read_caffemodel(caffemodel).blobs()
    # The mapping, spelt out for a few layers: BN blobs are scale, shift, mean, variance.
    bn = blobs["res3a_1_bn"].blobs
    for tensor, blob in zip(
        (
            model.layer2[0].norm_a.weight,
            model.layer2[0].norm_a.bias,
            model.layer2[0].norm_a.running_mean,
            model.layer2[0].norm_a.running_var,
        ),
        bn,
    ):
        assert torch.equal(tensor, torch.from_numpy(blob).view(-1))
    assert torch.equal(model.layer2[0].shortcut.bias, torch.from_numpy(blobs["res3a_down"].blobs[1]))
    assert torch.equal(model.norm.running_var, torch.from_numpy(blobs["res5b_bn"].blobs[3]).view(-1))
    assert torch.equal(model.fc.weight, torch.from_numpy(blobs["fc8"].blobs[0]))


def test_rgb_swaps_the_input_channels_of_both_stem_convolutions(released_caffemodel, random_clip):
    weights = read_caffemodel(released_caffemodel(ARTNET_DEPLOY, "artnet_r18_d"))
    bgr = convert_caffemodel(REFERENCE / ARTNET_DEPLOY, weights, "artnet_r18_d")
    rgb = convert_caffemodel(REFERENCE / ARTNET_DEPLOY, weights, "artnet_r18_d", rgb=True)
    assert (bgr.checkpoint["clip"]["normalization"], rgb.checkpoint["clip"]["normalization"]) == ("caffe", "caffe_rgb")
    assert rgb.checkpoint["converted_from"]["channels"] == "RGB"
    swapped = {"stem.appearance.weight", "stem.relation.weight"}  # conv1 and conv1_t both read the clip
    theirs = bgr.model.state_dict()
    for key, tensor in rgb.model.state_dict().items():
        assert torch.equal(tensor, theirs[key].flip(1) if key in swapped else theirs[key]), key
    clip = random_clip[None]
    with torch.inference_mode():
        torch.testing.assert_close(rgb.model.stem(clip.flip(1)), bgr.model.stem(clip), rtol=1e-5, atol=1e-4)


def test_legacy_v1_layers_convert_alike(filler_weights):
    """A caffemodel saved with V1 ``layers`` (type as an enum) gives the same checkpoint."""
    weights = filler_weights(ARTNET_DEPLOY)
    legacy = parse_caffemodel(serialize_caffemodel(weights.layers, v1_layers=True), source="v1.caffemodel")
    assert {layer.type for layer in legacy.layers} == {"Convolution", "InnerProduct", "None"}  # BN is not in V1's enum
    ours = convert_caffemodel(REFERENCE / ARTNET_DEPLOY, legacy, "artnet_r18_d").model.state_dict()
    for key, tensor in convert_caffemodel(REFERENCE / ARTNET_DEPLOY, weights, "artnet_r18_d").model.state_dict().items():
        assert torch.equal(ours[key], tensor), key


def test_fine_tuning_net_takes_its_own_classifier(filler_weights):
    kinetics = filler_weights(C3D_DEPLOY)
    prototxt = require(REFERENCE / "fine_tune/ucf_tsn_112_c3d_resnet_18_train_val.prototxt")
    with pytest.raises(CheckpointError, match="w.caffemodel: blobs left over, c3d_r18 has no layer fc8"):
        convert_caffemodel(prototxt, kinetics, "c3d_r18")


def _edit(name, blobs):
    """An edit of a caffemodel's layer list: layer ``name`` gets ``blobs(its blobs)``."""
    return lambda layers: [LayerBlobs(x.name, x.type, blobs(x.blobs)) if x.name == name else x for x in layers]


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda layers: layers + [LayerBlobs("fc9", "InnerProduct", [torch.zeros(2, 2).numpy()])],
            "blobs left over, c3d_r18 has no layer fc9",
        ),
        (lambda layers: [x for x in layers if x.name != "res3a_down"], r"no blobs for c3d_r18's layer\(s\) res3a_down"),
        (_edit("conv1", lambda blobs: blobs[:1]), r"layer 'conv1' has 1 blobs, c3d_r18 expects 2 \(weight, bias\)"),
        (
            _edit("fc8", lambda blobs: [blobs[0].T, blobs[1]]),
            r"weight blob of layer 'fc8' has shape \(512, 400\), expected \(400, 512\)",
        ),
        (
            _edit("res4b_bn", lambda blobs: blobs[:3]),
            r"layer 'res4b_bn' has 3 blobs, c3d_r18 expects 4 \(scale, shift, mean, variance\)",
        ),
    ],
    ids=["left-over", "missing", "blob-count", "shape", "bn-blobs"],
)
def test_blobs_that_do_not_fit_are_named(filler_weights, edit, message):
    weights = filler_weights(C3D_DEPLOY)
    weights.layers = edit(weights.layers)
    with pytest.raises(CheckpointError, match=f"^w.caffemodel: {message}"):
        convert_caffemodel(REFERENCE / C3D_DEPLOY, weights, "c3d_r18")


def test_fixed_pooling_weights_must_be_one_half(filler_weights):
    weights = filler_weights(ARTNET_DEPLOY)
    pooling3 = next(layer for layer in weights.layers if layer.name == "pooling3")
    pooling3.blobs = [pooling3.blobs[0].copy()]
    pooling3.blobs[0][5] = 0.7
    with pytest.raises(CheckpointError, match=r"fixed pooling layer 'pooling3' has weights in \[0.5, 0.7\], expected all 0.5"):
        convert_caffemodel(REFERENCE / ARTNET_DEPLOY, weights, "artnet_r18_d")


def test_every_tensor_of_the_model_must_come_from_the_caffemodel(filler_weights):
    model = create_model("c3d_r18")
    model.layer1.register_buffer("scratch", torch.zeros(3), persistent=False)  # a tensor no Caffe blob maps to
    with pytest.raises(CheckpointError, match=r"w.caffemodel: nothing sets c3d_r18's layer1.scratch"):
        load_caffe_weights(model, filler_weights(C3D_DEPLOY), "fc8")


def test_prototxt_of_another_model(filler_weights):
    with pytest.raises(
        ConfigError, match=r"112_c3d_resnet_18_deploy.prototxt does not describe artnet_r18_d: artnet_r18_d's layer\(s\) conv1_t"
    ):
        convert_caffemodel(REFERENCE / C3D_DEPLOY, filler_weights(C3D_DEPLOY), "artnet_r18_d")


def test_class_names_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("a\nb\n")
    assert read_class_names(path, 2) == ["a", "b"]
    with pytest.raises(ConfigError, match=rf"{path}: 2 class names, the network has 3 outputs"):
        read_class_names(path, 3)
    path.write_text("a\na\n")
    with pytest.raises(ConfigError, match="class name 'a' is given twice"):
        read_class_names(path, 2)


def test_cli_reports_a_malformed_caffemodel_on_one_line(tmp_path, capsys):
    bad = tmp_path / "truncated.caffemodel"
    bad.write_bytes(b"\xa2\x06\xff\xff\x03conv1")
    out = tmp_path / "never.pt"
    argv = [
        "convert",
        "--prototxt",
        str(REFERENCE / C3D_DEPLOY),
        "--caffemodel",
        str(bad),
        "--model",
        "c3d_r18",
        "--out",
        str(out),
    ]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"artnet convert: error: {bad}: not a valid caffemodel") and error.count("\n") == 1
    assert not out.exists()
    assert main(argv[:2] + [str(tmp_path / "none.prototxt")] + argv[3:]) == 2
    assert "none.prototxt: no such prototxt file" in capsys.readouterr().err


def test_cli_replaces_nothing_unless_asked(released_caffemodel, tmp_path, capsys):
    """An existing --out (a trained checkpoint, any file; a folder with files) is refused before anything is read;
    --force replaces it."""
    caffemodel = released_caffemodel(C3D_DEPLOY, "c3d_r18")
    out = tmp_path / "trained.pt"
    out.write_bytes(b"a file of the user's")
    argv = ["convert", "--prototxt", str(REFERENCE / C3D_DEPLOY), "--caffemodel", str(caffemodel), "--model", "c3d_r18", "--out", str(out)]
    unread = argv[:2] + [str(tmp_path / "none.prototxt")] + argv[3:]  # the refusal comes before the inputs are read
    for attempt in (argv, unread):
        assert main(attempt) == 2
        assert capsys.readouterr().err == f"artnet convert: error: {out}: exists; --force replaces it\n"
    assert out.read_bytes() == b"a file of the user's"
    assert main([*argv, "--force"]) == 0
    assert load_checkpoint(out)["model"]["name"] == "c3d_r18"

    folder = tmp_path / "model"  # a folder is a model folder (artnet export --format hf): one of the user's files in it
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's")
    assert main([*argv[:-1], str(folder)]) == 2
    assert capsys.readouterr().err == f"artnet convert: error: {folder}: a folder with files in it; --force writes into it\n"
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert main([*argv[:-1], str(folder), "--force"]) == 0
    assert (folder / "model.safetensors").is_file() and (folder / "notes.txt").read_text() == "the user's"


def test_a_flow_net_converts_to_a_model_for_flow_clips(tmp_path):
    """ARTNet's deploy net with a 2-channel data layer (and smaller clips, for speed): both stem convolutions read
    2 channels, the checkpoint records the flow normalisation, and the model computes what the Caffe reference does."""
    text = require(REFERENCE / ARTNET_DEPLOY).read_text()
    edits = {
        "shape {dim: 10 dim: 3 dim: 16 dim: 112 dim: 112}": "shape {dim: 1 dim: 2 dim: 8 dim: 64 dim: 64}",
        "pool: AVE\n    kernel_size: [1, 7, 7]": "pool: AVE\n    kernel_size: [1, 4, 4]",  # the global pool, on 4 x 4 maps
    }
    for released, small in edits.items():
        assert text.count(released) == 1
        text = text.replace(released, small)
    prototxt = tmp_path / "artnet_resnet_18_flow_deploy.prototxt"
    prototxt.write_text(text)
    reference = ReferenceNet(load_net(prototxt), seed=3).eval()
    generator = torch.Generator().manual_seed(3)
    randomize(reference, {op.layer.name for op in reference.layers}, generator)
    calibrate(reference, {"data": torch.randn(2, 2, 8, 64, 64, generator=generator) * 60.0}, generator)  # as verify's clip
    weights = CaffeModel(reference.caffe_blobs(), source="flow.caffemodel")
    converted = convert_caffemodel(prototxt, weights, "artnet_r18_d")
    checkpoint = converted.checkpoint
    assert checkpoint["model"]["options"] == {"num_classes": 400, "dropout": 0.2, "in_channels": 2}
    assert checkpoint["clip"] == {**checkpoint["clip"], "normalization": "flow", "clip_len": 8, "crop_size": 64}
    assert checkpoint["converted_from"]["channels"] == "xy"
    assert converted.model.stem.appearance.in_channels == converted.model.stem.relation.in_channels == 2
    assert verify_conversion(prototxt, weights, converted.model).passed
    with pytest.raises(ConfigError, match=r"a flow net \(2-channel clips\); --rgb swaps the channels of RGB nets"):
        convert_caffemodel(prototxt, weights, "artnet_r18_d", rgb=True)
