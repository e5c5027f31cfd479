"""VideoDataset end to end on real files: shapes, determinism, bad videos across worker processes."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from artnet.data import ClipSpec, Unreadable, VideoDataset, VideoRecord, collate_test, normalize, seed_worker
from artnet.errors import DataError


@pytest.fixture(scope="module")
def records(videos, media):
    return [
        VideoRecord(str(media / "ucf101" / "v_SoccerJuggling_g23_c01.avi"), 0),
        VideoRecord(str(media / "hmdb51" / "TrumanShow_wave_f_nm_np1_fr_med_26.avi"), 1),
        VideoRecord(str(videos["h264"]), 2),
        VideoRecord(str(videos["frames"]), 3),
        VideoRecord(str(videos["short"]), 4),
    ]


def test_train_val_test_shapes(records):
    train = VideoDataset(records, mode="train")
    clip, label, index = train[1]
    assert clip.shape == (3, 16, 112, 112) and clip.dtype == torch.float32 and (label, index) == (1, 1)
    tsn = VideoDataset(records, mode="train", clip=ClipSpec(num_segments=2))
    assert tsn[0][0].shape == (2, 3, 16, 112, 112)
    val = VideoDataset(records, mode="val", clip=ClipSpec(num_segments=2))
    assert val[3][0].shape == (2, 3, 16, 112, 112)
    test = VideoDataset(records, mode="test", num_clips=3, crops="10crop")
    assert test[4][0].shape == (30, 3, 16, 112, 112)
    assert VideoDataset(records, mode="test", num_clips=2, crops="3crop")[2][0].shape == (6, 3, 16, 112, 112)
    raw = VideoDataset(records, mode="train", normalize=False)[2][0]
    assert raw.shape == (16, 112, 112, 3) and raw.dtype == torch.uint8


def test_test_views_are_clip_major_and_match_the_crops(records):
    test = VideoDataset(records[2:3], mode="test", num_clips=3, crops="10crop", normalize=False)
    views = test[0][0]
    # the fixture's frame i is a flat grey of level 20 + 6 i: clip k starts at floor(k * 10) (N = 36)
    means = views.float().mean(dim=(2, 3, 4))[:, 0]  # first frame of each view
    assert torch.allclose(means[:10], means[0], atol=1) and torch.allclose(means[10:20], means[10], atol=1)
    assert abs(means[10] - means[0] - 60) < 4 and abs(means[20] - means[10] - 60) < 4


def test_draws_depend_only_on_seed_epoch_index(records):
    a, b = VideoDataset(records, seed=3), VideoDataset(records, seed=3)
    assert torch.equal(a[0][0], b[0][0])
    a.set_epoch(1)
    assert not torch.equal(a[0][0], b[0][0])
    b.set_epoch(1)
    assert torch.equal(a[0][0], b[0][0])
    assert not torch.equal(VideoDataset(records, seed=4)[0][0], VideoDataset(records, seed=3)[0][0])


def test_one_crop_and_flip_for_every_segment(tmp_path):
    from PIL import Image

    texture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 170, 3), dtype=np.uint8))
    for i in range(40):  # every frame the same picture: segments differ only if their crops do
        texture.save(tmp_path / f"img_{i + 1:05d}.jpg")
    dataset = VideoDataset([VideoRecord(str(tmp_path), 0)], mode="train", clip=ClipSpec(num_segments=2), normalize=False)
    outputs = []
    for epoch in range(8):
        dataset.set_epoch(epoch)
        clip = dataset[0][0]
        assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0, 0], clip[0, 15])
        outputs.append(clip[0, 0])
    assert len({o.numpy().tobytes() for o in outputs}) == 8  # a new draw each epoch


def test_bad_video_is_counted_once_and_replaced_across_workers(records, videos):
    bad = VideoRecord(str(videos["corrupt"]), 9)
    dataset = VideoDataset(records + [bad], mode="train", max_bad_ratio=0.5)
    dataset[0]  # the parent decodes too: its decoder state must not hang forked workers
    loader = DataLoader(dataset, batch_size=2, num_workers=2, worker_init_fn=seed_worker, persistent_workers=True)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        seen = []
        for clips, labels, indices in loader:
            assert clips.shape[1:] == (3, 16, 112, 112)
            assert torch.isfinite(clips).all() and clips.abs().sum() > 0  # never a zero clip
            assert 9 not in labels.tolist() and 5 not in indices.tolist()
            seen += indices.tolist()
        assert len(seen) == 6
    assert dataset.bad_samples() == 1  # counted in a worker, seen in the main process
    assert dataset.bad_indices() == [5]


def test_too_many_bad_videos_stop_with_a_summary(records, videos):
    bad = [VideoRecord(str(videos[name]), 0) for name in ("corrupt", "truncated", "audio")]
    dataset = VideoDataset(records[:1] + bad, mode="train", max_bad_ratio=0.3)
    with pytest.raises(DataError, match=r"2 of 4 videos could not be read \(50\.0%\), above max_bad_ratio"):
        for i in range(len(dataset)):
            dataset[i]


def test_test_mode_reports_failed_videos(records, videos):
    dataset = VideoDataset(records[2:3] + [VideoRecord(str(videos["zero"]), 7)], mode="test", num_clips=2, crops="center")
    batch = [dataset[0], dataset[1]]
    assert isinstance(batch[1][0], Unreadable) and "zero" in batch[1][0].reason
    clips, labels, indices, failed = collate_test(batch)
    assert clips.shape == (1, 2, 3, 16, 112, 112) and labels.tolist() == [2] and indices.tolist() == [0]
    assert failed == [1] and dataset.bad_samples() == 1
    assert collate_test([batch[1]])[0] is None
    loader = DataLoader(dataset, batch_size=2, num_workers=0, collate_fn=collate_test)
    assert next(iter(loader))[3] == [1]


@pytest.mark.parametrize("mode", ["val", "test"])
def test_evaluation_modes_give_no_clip_for_an_unreadable_video(records, videos, mode):
    dataset = VideoDataset(records[2:3] + [VideoRecord(str(videos["corrupt"]), 7)], mode=mode, num_clips=2, crops="center")
    assert isinstance(dataset[0][0], torch.Tensor)
    clip, label, index = dataset[1]
    assert isinstance(clip, Unreadable) and (label, index) == (7, 1)  # not replaced by another video's clip
    assert clip.reason.startswith(str(videos["corrupt"]))  # why, naming the file


def test_list_frame_count_is_checked(videos):
    with pytest.raises(DataError, match="the list says 60 frames, but only 36 decode"):
        VideoDataset([VideoRecord(str(videos["h264"]), 0, 60)]).load(0)
    clip = VideoDataset([VideoRecord(str(videos["h264"]), 0, 37)], mode="val", normalize=False).load(0)
    assert clip.shape == (16, 112, 112, 3)  # one frame short of the list: tolerated, sampled from 36


def test_normalized_equals_normalize_of_uint8(records):
    raw = VideoDataset(records, mode="val", normalize=False)[0][0]
    caffe = VideoDataset(records, mode="val")[0][0]
    assert torch.equal(normalize(raw, "caffe"), caffe)
    assert np.allclose(caffe[:, 0].mean(dim=(1, 2)).numpy() + [104, 117, 123], raw[0].float().mean(dim=(0, 1)).numpy()[::-1])


def test_bad_options(records):
    with pytest.raises(DataError, match="unknown dataset mode"):
        VideoDataset(records, mode="eval")
    with pytest.raises(DataError, match="no videos"):
        VideoDataset([])


def test_caffe_rgb_is_caffe_with_the_channels_swapped():
    import torch

    from artnet.data import normalize

    clip = torch.randint(0, 256, (2, 4, 5, 3), dtype=torch.uint8)
    torch.testing.assert_close(normalize(clip, "caffe_rgb"), normalize(clip, "caffe").flip(0))


def test_a_frame_folder_with_a_gap_is_a_bad_sample_never_a_shorter_video(tmp_path, caplog):
    from .conftest import frame_folder

    gap = frame_folder(tmp_path / "v_gap", [*range(1, 17), *range(18, 33)])
    good = frame_folder(tmp_path / "v_good", range(1, 33))
    records = [VideoRecord(str(good), 0), VideoRecord(str(gap), 1)]
    clip = ClipSpec(frame_size=(48, 64), crop_size=32)
    test = VideoDataset(records, mode="test", num_clips=2, crops="center", clip=clip)
    with caplog.at_level("WARNING"):
        assert isinstance(test[1][0], Unreadable) and isinstance(test[0][0], torch.Tensor)
    assert "img_00017.jpg is missing" in test[1][0].reason
    assert test.bad_indices() == [1]
    assert any("img_00017.jpg is missing; 15 frame(s) after the gap" in r.getMessage() for r in caplog.records)
    train = VideoDataset(records, mode="train", clip=clip, max_bad_ratio=0.5)
    assert train[1][2] == 0  # replaced by the readable video, and counted
    assert train.bad_samples() == 1
