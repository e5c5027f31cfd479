"""Direction-sensitive data: ``flip=False`` mirrors nothing, and a flip label map swaps the labels of
mirrored training clips and puts mirrored test views' logits back in label order, through a real model."""

import numpy as np
import pytest
import torch

from artnet import create_model
from artnet.data import ClipSpec, VideoDataset, VideoRecord, transforms
from artnet.data.h264 import write_h264
from artnet.engine.distributed import DistributedEnv
from artnet.engine.evaluate import evaluate
from artnet.errors import ConfigError, DataError

CLIP = ClipSpec(clip_len=4, frame_size=(48, 64), crop_size=32)
CLASSES = ["Left", "Still", "Right"]
MIRROR = [["Left", "Right"]]


@pytest.fixture(scope="module")
def ramp_records(tmp_path_factory):
    """Real H.264 videos whose frames brighten from left to right: a view's slope tells if it was mirrored."""
    folder = tmp_path_factory.mktemp("ramps")
    ramp = np.linspace(16, 240, 64).astype(np.uint8)[None, None, :, None]
    frames = np.broadcast_to(ramp, (12, 48, 64, 3)).copy()
    records = []
    for label in range(len(CLASSES)):
        path = folder / f"ramp{label}.mp4"
        write_h264(path, frames, 25, {"crf": "10"})
        records.append(VideoRecord(str(path), label))
    return records


def mirrored(views: torch.Tensor) -> list[bool]:
    """Which of the uint8 views ``(N, T, H, W, C)`` are darker on their right side than on their left."""
    columns = views.float().mean(dim=(1, 2, 4))  # (N, W)
    return (columns[:, -4:].mean(dim=1) < columns[:, :4].mean(dim=1)).tolist()


def test_no_view_is_mirrored_without_flip(ramp_records):
    kept = transforms.test_crops(48, 64, 32, "10crop", flip=False)
    assert kept == transforms.test_crops(48, 64, 32, "10crop")[:5] and not any(c.flip for c in kept)

    test = VideoDataset(ramp_records, CLASSES, clip=CLIP, mode="test", num_clips=2, crops="10crop", normalize=False, flip=False)
    views, _, _ = test[0]
    assert views.shape[0] == 2 * 5 and test.views_per_clip == 5
    assert mirrored(views) == [False] * 10 == test.view_flips.tolist()
    train = VideoDataset(ramp_records, CLASSES, clip=CLIP, mode="train", normalize=False, flip=False)
    for epoch in range(8):  # p = 0.5 each: 24 unmirrored draws in a row would be chance 6e-8
        train.set_epoch(epoch)
        assert mirrored(torch.stack([train[i][0] for i in range(3)])) == [False] * 3

    # with flip (upstream), the view layout says which views are mirrored, and they are
    flipping = VideoDataset(ramp_records, CLASSES, clip=CLIP, mode="test", num_clips=2, crops="10crop", normalize=False)
    assert mirrored(flipping[0][0]) == flipping.view_flips.tolist() == ([False] * 5 + [True] * 5) * 2
    assert flipping.views_per_clip == 10


def test_mirrored_training_clips_take_the_mirrored_label(ramp_records):
    dataset = VideoDataset(ramp_records, CLASSES, clip=CLIP, mode="train", normalize=False, flip_label_map=MIRROR)
    seen = {True: set(), False: set()}
    for epoch in range(10):
        dataset.set_epoch(epoch)
        for index, record in enumerate(ramp_records):
            clip, label, _ = dataset[index]
            (flipped,) = mirrored(clip[None])
            expected = {0: 2, 1: 1, 2: 0}[record.label] if flipped else record.label
            assert label == expected, (epoch, index, flipped)
            seen[flipped].add(record.label)
    assert seen[True] == seen[False] == {0, 1, 2}  # both draws happened for every class


def test_mirrored_test_views_are_swapped_back_before_averaging(ramp_records):
    torch.manual_seed(0)
    model = create_model("c3d_r18", num_classes=3, width_mult=0.125, depths=[1, 1, 1, 1]).eval()
    options = {"clip": CLIP, "mode": "test", "num_clips": 1, "crops": "10crop"}
    plain = VideoDataset(ramp_records[:1], CLASSES, **options)
    mapped = VideoDataset(ramp_records[:1], CLASSES, flip_label_map=MIRROR, **options)
    env = DistributedEnv()
    ours = evaluate(model, mapped, env, num_workers=0, view_batch=7)
    reference = evaluate(model, plain, env, num_workers=0, view_batch=7)

    # by hand: every view through the model, the mirrored ones' Left and Right logits exchanged, crops then clips averaged
    with torch.no_grad():
        logits = model(plain[0][0]).numpy()
    flipped = np.array([False] * 5 + [True] * 5)
    logits[flipped] = logits[flipped][:, [2, 1, 0]]
    by_hand = logits.mean(axis=0)
    np.testing.assert_allclose(ours.video_scores[0], by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(reference.video_scores[0], by_hand, atol=1e-4)  # the map made a difference
    assert ours.video_scores[0, 1] == pytest.approx(reference.video_scores[0, 1], rel=1e-5)  # Still is its own mirror


def test_flip_label_maps_are_checked():
    with pytest.raises(
        ConfigError, match=r"'flip_label_map' names 'Rigth', not a class of the dataset \(did you mean 'Right'\?\)"
    ):
        transforms.flip_label_permutation([["Left", "Rigth"]], CLASSES)
    with pytest.raises(ConfigError, match=r"'flip_label_map' names 'Left' twice"):
        transforms.flip_label_permutation([["Left", "Right"], ["Still", "Left"]], CLASSES)
    with pytest.raises(ConfigError, match=r"holds \['Left'\]: each entry is a pair of two different class names"):
        transforms.check_flip_pairs([["Left"]])
    with pytest.raises(ConfigError, match=r"holds \['Left', 'Left'\]"):
        transforms.check_flip_pairs([["Left", "Left"]])
    assert transforms.flip_label_permutation(MIRROR, CLASSES).tolist() == [2, 1, 0]
    with pytest.raises(DataError, match="a flip label map names classes: give the dataset its class names"):
        VideoDataset([VideoRecord("v.mp4", 0)], flip_label_map=MIRROR)
