"""Crop geometry against upstream (fillCropSize, c3d_rgb_stack_oversample) and normalisation presets."""

import numpy as np
import pytest
import torch

from artnet.data import transforms
from artnet.data.transforms import (
    Crop,
    apply_crop,
    center_crop,
    multiscale_crop_sizes,
    normalize,
    random_crop,
)
from artnet.errors import DataError


def test_multiscale_sizes_of_the_upstream_frame():
    # base 128: int(128 * {1, .875, .75, .66}) = {128, 112, 96, 84}; pairs one scale step apart
    assert multiscale_crop_sizes(128, 170) == [
        (128, 128), (128, 112),
        (112, 128), (112, 112), (112, 96),
        (96, 112), (96, 96), (96, 84),
        (84, 96), (84, 84),
    ]  # fmt: skip


def test_sizes_within_3px_snap_to_the_input_size():
    # base 130: 130 * .875 = 113.75 -> 113 -> 112 (within 3 px); base 124: 108.5 -> 108 stays
    assert {h for h, _ in multiscale_crop_sizes(130, 200)} == {130, 112, 97, 85}
    assert {h for h, _ in multiscale_crop_sizes(124, 200)} == {124, 108, 93, 81}


def test_random_crop_draws_every_pair_anywhere_and_flips_half():
    rng = np.random.default_rng(0)
    draws = [random_crop(128, 170, rng) for _ in range(4000)]
    assert {(d.height, d.width) for d in draws} == set(multiscale_crop_sizes(128, 170))
    for d in draws:
        assert 0 <= d.top <= 128 - d.height and 0 <= d.left <= 170 - d.width
    assert {d.left for d in draws if (d.height, d.width) == (84, 84)} == set(range(170 - 84 + 1))
    assert 0.45 < np.mean([d.flip for d in draws]) < 0.55
    assert not any(random_crop(128, 170, rng, flip=False).flip for _ in range(50))


def test_ten_crops_as_upstream():
    crops = transforms.test_crops(128, 170, 112, "10crop")
    corners = [(0, 0), (0, 58), (16, 0), (16, 58), (8, 29)]
    assert [(c.top, c.left) for c in crops] == corners + corners
    assert [c.flip for c in crops] == [False] * 5 + [True] * 5
    assert all((c.height, c.width) == (112, 112) for c in crops)
    assert center_crop(128, 170) == Crop(8, 29, 112, 112)
    assert transforms.test_crops(128, 170, 112, "center") == [Crop(8, 29, 112, 112)]
    assert [(c.top, c.left) for c in transforms.test_crops(128, 170, 112, "3crop")] == [(8, 0), (8, 29), (8, 58)]
    assert [(c.top, c.left) for c in transforms.test_crops(170, 128, 112, "3crop")] == [(0, 8), (29, 8), (58, 8)]
    with pytest.raises(DataError, match="unknown test crops"):
        transforms.test_crops(128, 170, 112, "5crop")
    with pytest.raises(DataError, match="does not fit"):
        transforms.test_crops(100, 170, 112)


def test_ten_crop_pixels_match_upstream_oversample():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (16, 128, 170, 3), dtype=np.uint8)
    # upstream c3d_rgb_stack_oversample on (T, H, W, C)
    h_idx, w_idx = (0, 16), (0, 58)
    boxes = [(i, j) for i in h_idx for j in w_idx] + [(8, 29)]
    expected = [clip[:, i : i + 112, j : j + 112] for i, j in boxes]
    expected = expected + [e[:, :, ::-1] for e in expected]
    for crop, want in zip(transforms.test_crops(128, 170), expected):
        np.testing.assert_array_equal(apply_crop(clip, crop).numpy(), want)


def test_apply_crop_resizes_and_flips_identically_for_all_frames():
    frames = torch.zeros(2, 4, 128, 170, 3, dtype=torch.uint8)
    frames[..., :, :85, 0] = 200  # left half red
    out = apply_crop(frames, Crop(0, 0, 128, 170, flip=True))
    assert out.shape == (2, 4, 112, 112, 3) and out.dtype == torch.uint8
    assert (out[..., :, 60:, 0] == 200).all() and (out[..., :, :50, 0] == 0).all()  # mirrored
    ramp = torch.arange(96, dtype=torch.uint8).repeat(96, 1)[None, :, :, None].expand(1, 96, 96, 3).contiguous()
    up = apply_crop(ramp, Crop(0, 0, 96, 96), 112)
    assert torch.all(up[0, 0, 1:, 0].int() - up[0, 0, :-1, 0].int() >= 0)  # bilinear keeps a ramp monotonic


def test_caffe_normalization_is_bgr_minus_mean():
    clip = torch.tensor([10, 20, 30], dtype=torch.uint8).expand(2, 3, 4, 3).contiguous()  # T=2, H=3, W=4, RGB
    out = normalize(clip, "caffe")
    assert out.shape == (3, 2, 3, 4) and out.dtype == torch.float32
    assert out[:, 0, 0, 0].tolist() == [30 - 104, 20 - 117, 10 - 123]  # B, G, R


def test_kinetics_normalization_is_rgb_scaled_mean_std():
    clip = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    out = normalize(clip, "kinetics")
    expected = (1 - torch.tensor([0.43216, 0.394666, 0.37645])) / torch.tensor([0.22803, 0.22145, 0.216989])
    torch.testing.assert_close(out[:, 0, 0, 0], expected)


def test_normalize_keeps_leading_axes_and_rejects_floats():
    views = torch.zeros(5, 2, 16, 8, 8, 3, dtype=torch.uint8)
    assert normalize(views).shape == (5, 2, 3, 16, 8, 8)
    with pytest.raises(DataError, match="uint8"):
        normalize(views.float())
    with pytest.raises(DataError, match="unknown normalization"):
        normalize(views, "imagenet")
