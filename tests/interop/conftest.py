"""Random caffemodels for the released networks, and a real clip decoded with PyAV.

A caffemodel is made the way Caffe makes a fresh net: the reference executor fills every blob
from the prototxt's fillers (so the fixed pooling convolutions hold 0.5), then every learnable
blob is randomised: biases and BN scale / shift included. BN running statistics are set from
the statistics at each BN's input of the clips the tests use (a random and a real one), then
perturbed (mean + 0.2 std noise, variance x U(0.5, 2)): random and non-trivial, yet keeping
activations in range through 18 layers (the squares of the relation branches would otherwise
blow them up), so that a 1e-4 logit tolerance means something.

The backbone is made once per architecture (on the deploy net) and shared by that
architecture's fine-tuning nets, which only add their own random ``fc``: the expensive part,
a calibration pass, runs twice per session rather than six times.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from artnet.interop.caffemodel import CaffeModel, read_caffemodel, write_caffemodel
from artnet.interop.prototxt import load_net
from artnet.interop.reference import BN, ReferenceNet

from ..conftest import MEDIA, REFERENCE, require

CAFFE_MEANS = (104.0, 117.0, 123.0)  # B, G, R
REAL_VIDEO = "ucf101/v_SoccerJuggling_g23_c01.avi"
DEPLOY = {"c3d_r18": "models/112_c3d_resnet_18_deploy.prototxt", "artnet_r18_d": "models/112_artnet_resnet_18_deploy.prototxt"}


def decode_clip(path: Path, start: int, length: int = 16, size: int = 112) -> torch.Tensor:
    """``length`` frames from ``start``, resized to ``size``, BGR 0-255 minus the Caffe means: (3, T, H, W)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start:
                frames.append(torch.from_numpy(frame.to_ndarray(format="bgr24")))
            if len(frames) == length:
                break
    assert len(frames) == length, f"{path} has fewer than {start + length} frames"
    clip = torch.stack(frames).permute(0, 3, 1, 2).float()  # T, 3, H, W
    clip = torch.nn.functional.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False)
    return clip.permute(1, 0, 2, 3) - torch.tensor(CAFFE_MEANS).view(3, 1, 1, 1)


@pytest.fixture(scope="session")
def real_clip() -> torch.Tensor:
    return decode_clip(require(MEDIA / REAL_VIDEO), start=112)


@pytest.fixture(scope="session")
def random_clip() -> torch.Tensor:
    return torch.randn(3, 16, 112, 112, generator=torch.Generator().manual_seed(7)) * 60.0


def randomize(reference: ReferenceNet, layers: set[str], generator: torch.Generator) -> None:
    """Random values for the learnable blobs (``lr_mult`` != 0) of ``layers`` that the fillers
    leave constant: biases, BN scale and shift. BN statistics are :func:`calibrate`'s."""
    with torch.no_grad():
        for op in reference.layers:
            if op.layer.name not in layers:
                continue
            lr_mults = [spec.get("lr_mult", 1) for spec in op.layer.message.getall("param")]
            for index, blob in enumerate(op.blobs):
                if index < len(lr_mults) and lr_mults[index] == 0:
                    continue  # fixed: the pooling convolutions keep their 0.5
                if isinstance(op, BN):
                    if index == 0:
                        blob.uniform_(0.5, 1.5, generator=generator)
                    elif index == 1:
                        blob.normal_(0.0, 0.2, generator=generator)
                elif index == 1:  # a bias; weights are already random: the xavier filler's draw
                    blob.normal_(0.0, 0.1, generator=generator)


def calibrate(reference: ReferenceNet, inputs: dict, generator: torch.Generator) -> None:
    """Set each BN's running statistics from its input on ``inputs``, perturbed, before it is applied."""

    def set_statistics(op, args):
        x = args[0]
        axes = [d for d in range(x.dim()) if d != 1]
        mean, variance = x.mean(axes), x.var(axes, unbiased=False)
        noise = torch.randn(mean.shape, generator=generator)
        op.blobs[2].copy_((mean + 0.2 * variance.sqrt() * noise).view(1, -1))
        op.blobs[3].copy_((variance * torch.empty(variance.shape).uniform_(0.5, 2.0, generator=generator)).view(1, -1))

    hooks = [op.register_forward_pre_hook(set_statistics) for op in reference.layers if isinstance(op, BN)]
    try:
        with torch.no_grad():
            reference(inputs)
    finally:
        for hook in hooks:
            hook.remove()


@pytest.fixture(scope="session")
def released_caffemodel(tmp_path_factory, random_clip, real_clip):
    """``(prototxt, model name) -> path`` of a random caffemodel for that released net (cached)."""
    folder = tmp_path_factory.mktemp("caffemodels")
    made: dict[str, Path] = {}

    def make(prototxt: str, model_name: str) -> Path:
        if prototxt in made:
            return made[prototxt]
        generator = torch.Generator().manual_seed(len(made) + 1)
        net = load_net(require(REFERENCE / prototxt))
        if prototxt == DEPLOY[model_name]:
            reference = ReferenceNet(net, seed=len(made)).eval()
            randomize(reference, {op.layer.name for op in reference.layers}, generator)
            calibrate(reference, {"data": torch.stack([random_clip, real_clip])}, generator)
        else:  # a fine-tuning net: the deploy net's backbone, its own random classifier
            backbone = read_caffemodel(make(DEPLOY[model_name], model_name))
            backbone = CaffeModel([layer for layer in backbone.layers if layer.name != "fc8"], source=backbone.source)
            reference = ReferenceNet(net, backbone, seed=len(made)).eval()
            assert reference.uninitialized == ["fc"]
            randomize(reference, {"fc"}, generator)
        made[prototxt] = write_caffemodel(folder / (Path(prototxt).stem + ".caffemodel"), reference.caffe_blobs())
        return made[prototxt]

    return make
