"""Converted weights give the logits the Caffe reference executor gives, for every released net.

For each released deploy net (Kinetics, 400 classes) and each fine-tuning net (UCF101 / HMDB51,
101 / 51 classes, 2 segments), a caffemodel with random weights and random BN statistics is
written to disk; the reference executor runs it from the prototxt and the file, the converter
turns the file into an artnet model, and both see a random clip and a real clip decoded from
../shared/media. The fine-tuning nets take one video whose two segments are those two clips:
their per-clip ``fc`` outputs check each clip, ``pool_fc8`` checks the TSN consensus.
"""

import pytest
import torch
import torch.nn.functional as F

from artnet.interop.caffemodel import read_caffemodel
from artnet.interop.convert import convert_caffemodel
from artnet.interop.prototxt import load_net
from artnet.interop.reference import ReferenceNet
from artnet.models.tsn import consensus_forward

from ..conftest import REFERENCE

TOLERANCE = 1e-4  # max |difference| of fp32 logits

DEPLOY_NETS = [
    ("models/112_c3d_resnet_18_deploy.prototxt", "c3d_r18"),
    ("models/112_artnet_resnet_18_deploy.prototxt", "artnet_r18_d"),
]
FINE_TUNING_NETS = [
    ("fine_tune/ucf_tsn_112_c3d_resnet_18_train_val.prototxt", "c3d_r18", 101),
    ("fine_tune/hmdb_tsn_112_c3d_resnet_18_train_val.prototxt", "c3d_r18", 51),
    ("fine_tune/ucf_tsn_112_artnet_resnet_18_train_val.prototxt", "artnet_r18_d", 101),
    ("fine_tune/hmdb_tsn_112_artnet_resnet_18_train_val.prototxt", "artnet_r18_d", 51),
]


def _reference(prototxt, weights):
    reference = ReferenceNet(load_net(REFERENCE / prototxt), weights).eval()
    assert reference.uninitialized == []  # every parametrised layer came from the file
    return reference


@pytest.mark.parametrize("prototxt, model_name", DEPLOY_NETS, ids=["c3d_r18", "artnet_r18_d"])
def test_deploy_net(prototxt, model_name, released_caffemodel, random_clip, real_clip):
    weights = read_caffemodel(released_caffemodel(prototxt, model_name))
    reference = _reference(prototxt, weights)
    converted = convert_caffemodel(REFERENCE / prototxt, weights, model_name)
    assert converted.checkpoint["classes"][:2] == ["class_000", "class_001"] and len(converted.checkpoint["classes"]) == 400

    clips = torch.stack([random_clip, real_clip])  # as the deploy DummyData: N x 3 x 16 x 112 x 112, BGR - means
    with torch.inference_mode():
        expected = reference(data=clips)["fc-action"]
        logits = converted.model(clips)
    assert expected.shape == logits.shape == (2, 400)
    assert expected.std() > 0.1  # the random BN statistics keep the logits in range: the tolerance bites
    torch.testing.assert_close(logits, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    "prototxt, model_name, num_classes", FINE_TUNING_NETS, ids=["ucf_c3d", "hmdb_c3d", "ucf_artnet", "hmdb_artnet"]
)
def test_fine_tuning_net(prototxt, model_name, num_classes, released_caffemodel, random_clip, real_clip):
    weights = read_caffemodel(released_caffemodel(prototxt, model_name))
    reference = _reference(prototxt, weights)
    assert reference.input_shapes == {"data": (1, 96, 112, 112), "label": (1,)}  # VideoData, TEST phase
    converted = convert_caffemodel(REFERENCE / prototxt, weights, model_name)
    assert converted.checkpoint["converted_from"]["classifier"] == "fc"
    assert converted.checkpoint["clip"]["num_segments"] == 2

    video = torch.stack([random_clip, real_clip])[None]  # 1 video x 2 segments x 3 x 16 x 112 x 112
    label = torch.tensor([3.0])
    per_clip = []
    hook = converted.model.fc.register_forward_hook(lambda module, args, out: per_clip.append(out))
    with torch.inference_mode():
        # The data layer's blob: each segment's 16 frames colour-major, segments one after another.
        blobs = reference(data=video.reshape(1, 96, 112, 112), label=label)
        video_logits = consensus_forward(converted.model, video)
    hook.remove()

    assert blobs["fc8"].shape == per_clip[0].shape == (2, num_classes)
    torch.testing.assert_close(per_clip[0], blobs["fc8"], rtol=0, atol=TOLERANCE)  # the random and the real clip
    torch.testing.assert_close(video_logits, blobs["pool_fc8"].reshape(1, num_classes), rtol=0, atol=TOLERANCE)
    # Consensus before the softmax: the loss of the averaged logits, as SoftmaxWithLoss over pool_fc8.
    torch.testing.assert_close(F.cross_entropy(video_logits, label.long()), blobs["loss"], rtol=0, atol=TOLERANCE)
    rank = (video_logits[0] > video_logits[0, 3]).sum()
    assert blobs["top1"].item() == float(rank < 1) and blobs["top5"].item() == float(rank < 5)
