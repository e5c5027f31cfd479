"""Optical flow: known motion recovered from a real video (TV-L1, Farneback), upstream's quantisation and
flip, flow folders through the reader, samplers, transforms and dataset, and ``artnet prepare --to flow``."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from artnet.cli import main
from artnet.data import ClipSpec, VideoDataset, load_list, open_video, sampling, transforms
from artnet.data.annotations import VideoRecord
from artnet.data.flow import FlowOptions, dequantize_flow, flow_fields, quantize_flow
from artnet.data.h264 import write_h264
from artnet.data.prepare import EncodeOptions, convert_video, prepare_videos
from artnet.data.readers import FlowFolderReader, FrameFolderReader
from artnet.errors import DataError

SIZE = (32, 40)  # H, W
NUM_FRAMES = 6
MOTION = (2, -1)  # pixels per frame: x (right) and y (down)
BORDER = 4  # pixels where part of the texture enters or leaves the frame


def moving_texture(motion=MOTION, num_frames=NUM_FRAMES, size=SIZE, seed=0) -> np.ndarray:
    """uint8 RGB ``(T, H, W, 3)``: a smooth random grey texture translated by ``motion`` pixels per frame."""
    height, width = size
    margin = 4 * max(abs(v) for v in motion) * num_frames
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.random((1, 1, (height + 2 * margin) // 4, (width + 2 * margin) // 4), dtype=np.float32))
    canvas = F.interpolate(noise, size=(height + 2 * margin, width + 2 * margin), mode="bicubic", align_corners=False)[0, 0]
    canvas = ((canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255).round().to(torch.uint8).numpy()
    dx, dy = motion
    tops, lefts = (margin - dy * t for t in range(num_frames)), (margin - dx * t for t in range(num_frames))
    frames = [canvas[top : top + height, left : left + width] for top, left in zip(tops, lefts)]
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def moving_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("moving") / "moving.mp4"
    write_h264(path, moving_texture(), 25, {"crf": "10"})  # a real H.264 file, near lossless
    return path


def interior(flow: np.ndarray) -> np.ndarray:
    return flow[:, BORDER:-BORDER, BORDER:-BORDER]


def write_flow_folder_by_hand(folder, num_frames, patterns=("x_{:05d}.jpg", "y_{:05d}.jpg"), size=SIZE):
    """Flow frame k (0-based) holds x = 20 + 10 k and y = 220 - 10 k everywhere, so a read tells which frame it is."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(num_frames):
        Image.fromarray(np.full(size, 20 + 10 * k, np.uint8)).save(folder / patterns[0].format(k + 1), quality=95)
        Image.fromarray(np.full(size, 220 - 10 * k, np.uint8)).save(folder / patterns[1].format(k + 1), quality=95)
    return folder


def flow_frame_indices(flow: np.ndarray) -> list[int]:
    """Which hand-written flow frame each of (n, H, W, 2) is, from x; checks that y agrees."""
    x = np.rint((flow[..., 0].mean(axis=(1, 2)) - 20) / 10).astype(int)
    y = np.rint((220 - flow[..., 1].mean(axis=(1, 2))) / 10).astype(int)
    assert (x == y).all()
    return x.tolist()


# ---------------------------------------------------------------------------------------------------------
# extraction


@pytest.mark.parametrize("method, within_a_pixel", [("tvl1", 0.99), ("farneback", 0.95)])
def test_extraction_recovers_a_known_translation(moving_video, tmp_path, method, within_a_pixel):
    folder = tmp_path / "flow"
    count = convert_video(str(moving_video), str(folder), EncodeOptions(to="flow", size=SIZE, flow=FlowOptions(method=method)))
    assert count == NUM_FRAMES - 1  # one flow frame per pair of consecutive frames
    assert sorted(p.name for p in folder.iterdir()) == [f"{c}_{i:05d}.jpg" for c in "xy" for i in range(1, NUM_FRAMES)]
    with open_video(folder, size=None) as reader:
        assert isinstance(reader, FlowFolderReader)
        assert (reader.num_frames, reader.frame_size) == (NUM_FRAMES - 1, SIZE)
        flow = dequantize_flow(reader.read(range(reader.num_frames)))
    inner = interior(flow)
    np.testing.assert_allclose(np.median(inner, axis=(0, 1, 2)), MOTION, atol=0.25)
    error = np.abs(inner - np.array(MOTION, np.float32)).max(axis=-1)
    assert (error < 1).mean() >= within_a_pixel


def test_quantisation_is_upstreams_convert_flow_to_image():
    # dense_flow convertFlowToImage, bound 20: v > 20 -> 255, v < -20 -> 0, else cvRound(255 * (v + 20) / 40)
    flow = np.array([-25, -20, -19.99, -10, -0.05, 0, 0.05, 10, 19.99, 20, 25], np.float32)
    assert quantize_flow(flow).tolist() == [0, 0, 0, 64, 127, 128, 128, 191, 255, 255, 255]
    assert quantize_flow(flow, bound=10).tolist() == [0, 0, 0, 0, 127, 128, 128, 255, 255, 255, 255]
    inside = np.linspace(-20, 20, 1001, dtype=np.float32)
    assert np.abs(dequantize_flow(quantize_flow(inside)) - inside).max() <= 20 / 255 + 1e-5  # half a step


def test_flow_needs_two_frames_and_a_known_method(tmp_path):
    with pytest.raises(DataError, match="unknown flow method"):
        FlowOptions(method="brox")
    with pytest.raises(DataError, match="bound must be positive"):
        FlowOptions(bound=0)
    single = tmp_path / "single.mp4"
    write_h264(single, moving_texture(num_frames=1), 25, {"crf": "10"})
    with pytest.raises(DataError, match="single.mp4: a single frame, not a video"):  # the reader refuses it first
        convert_video(str(single), str(tmp_path / "out"), EncodeOptions(to="flow", size=SIZE))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_missing_opencv_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` meets when OpenCV is not installed
    with pytest.raises(DataError, match=r"pip install 'artnet\[flow\]'"):
        list(flow_fields(moving_texture()))
    (tmp_path / "src").mkdir()
    with pytest.raises(DataError, match=r"artnet\[flow\]"):
        prepare_videos(tmp_path / "src", tmp_path / "dst", EncodeOptions(to="flow"))


# ---------------------------------------------------------------------------------------------------------
# transforms


def upstream_c3d_flow_stack_oversample(flow_stack, crop_dims):
    """ARTNet test/pyActionRecog/utils/io.py, c3d_flow_stack_oversample: (2T, H, W) x, y interleaved ->
    (10, T, h, w, 2); the mirrored five have x = 255 - x."""
    height, width = flow_stack.shape[1:]
    crop_h, crop_w = crop_dims
    corners = [(i, j) for i in (0, height - crop_h) for j in (0, width - crop_w)]
    corners.append(((height - crop_h) // 2, (width - crop_w) // 2))
    flow_x, flow_y = flow_stack[::2], flow_stack[1::2]
    crops = np.empty((10, flow_stack.shape[0] // 2, crop_h, crop_w, 2), flow_stack.dtype)
    for ix, (i, j) in enumerate(corners + corners):
        crops[ix, ..., 0] = flow_x[:, i : i + crop_h, j : j + crop_w]
        crops[ix, ..., 1] = flow_y[:, i : i + crop_h, j : j + crop_w]
    crops[5:, ..., 0] = 255 - crops[5:, :, :, ::-1, 0]
    crops[5:, ..., 1] = crops[5:, :, :, ::-1, 1]
    return crops


def test_ten_crops_of_flow_match_upstream_oversample():
    clip = np.random.default_rng(0).integers(0, 256, (16, 128, 170, 2), dtype=np.uint8)
    interleaved = clip.transpose(0, 3, 1, 2).reshape(32, 128, 170)
    expected = upstream_c3d_flow_stack_oversample(interleaved, (112, 112))
    views = [transforms.apply_crop(clip, crop).numpy() for crop in transforms.test_crops(128, 170)]
    np.testing.assert_array_equal(np.stack(views), expected)


def test_flip_inverts_the_x_motion():
    flow = quantize_flow(np.stack(list(flow_fields(moving_texture(), "tvl1"))))
    mirrored = transforms.apply_crop(flow, transforms.Crop(0, 4, 32, 32, flip=True), 32).numpy()
    np.testing.assert_allclose(np.median(interior(dequantize_flow(mirrored)), axis=(0, 1, 2)), (-MOTION[0], MOTION[1]), atol=0.25)
    # and it is the flow of the mirrored video
    of_mirrored = quantize_flow(np.stack(list(flow_fields(moving_texture()[:, :, ::-1], "tvl1"))))[:, :, 4:36]
    assert np.abs(interior(of_mirrored).astype(int) - interior(mirrored)).mean() < 0.5


def test_resized_crops_keep_x_and_y_apart():
    clip = np.zeros((2, 48, 64, 2), np.uint8)
    clip[..., 0], clip[..., 1] = 200, 30
    out = transforms.apply_crop(clip, transforms.Crop(0, 0, 48, 48), 24)
    assert out.shape == (2, 24, 24, 2) and out.dtype == torch.uint8
    assert (out[..., 0] == 200).all() and (out[..., 1] == 30).all()


def test_flow_normalization_subtracts_128_in_x_y_order():
    clip = torch.tensor([200, 30], dtype=torch.uint8).expand(3, 4, 5, 2).contiguous()  # T=3, H=4, W=5
    out = transforms.normalize(clip, "flow")
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float32
    assert out[:, 0, 0, 0].tolist() == [200 - 128, 30 - 128]
    with pytest.raises(DataError, match=r"'flow' expects uint8 \(\.\.\., T, H, W, 2\)"):
        transforms.normalize(torch.zeros(3, 4, 5, 3, dtype=torch.uint8), "flow")
    with pytest.raises(DataError, match=r"'caffe' expects uint8 \(\.\.\., T, H, W, 3\)"):
        transforms.normalize(clip, "caffe")


# ---------------------------------------------------------------------------------------------------------
# flow folders


def test_flow_folders_read_back_through_the_samplers(tmp_path):
    folder = write_flow_folder_by_hand(tmp_path / "v_flow", 12)
    with open_video(folder, size=None) as reader:
        assert isinstance(reader, FlowFolderReader) and reader.backend == "frames"
        assert (reader.num_frames, reader.frame_size) == (12, SIZE)
        train = sampling.segment_clips(reader.num_frames, 2, clip_len=4, rng=np.random.default_rng(0))
        frames = reader.read(train.reshape(-1))
        assert frames.shape == (8, *SIZE, 2) and frames.dtype == np.uint8
        assert flow_frame_indices(frames) == train.reshape(-1).tolist()
        test = sampling.test_clips(reader.num_frames, num_clips=3, clip_len=4)
        assert flow_frame_indices(reader.read(test.reshape(-1))) == test.reshape(-1).tolist()
        with pytest.raises(DataError, match="frame index 12 out of range"):
            reader.read([12])
    with open_video(folder, size=(64, 80)) as reader:  # resized in the reader, as frames are
        resized = reader.read([3, 3, 0])
        assert resized.shape == (3, 64, 80, 2) and flow_frame_indices(resized) == [3, 3, 0]


def test_flow_folder_names_and_gaps(tmp_path):
    dense_flow_names = write_flow_folder_by_hand(tmp_path / "a", 5, patterns=("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"))
    with open_video(dense_flow_names, size=None) as reader:
        assert isinstance(reader, FlowFolderReader) and reader.num_frames == 5
    gap = write_flow_folder_by_hand(tmp_path / "b", 6)
    (gap / "y_00004.jpg").unlink()  # frames 1-3 have both components; 5 and 6 would be lost
    with pytest.raises(DataError, match=r"b: frame y_00004.jpg is missing; 2 frame\(s\) after the gap, up to x_00006.jpg, would"):
        open_video(gap, size=None)
    last = write_flow_folder_by_hand(tmp_path / "b_last", 6)
    (last / "x_00006.jpg").unlink()  # the last flow frame with one component only
    with pytest.raises(DataError, match=r"b_last: frame x_00006.jpg is missing beside y_00006.jpg"):
        open_video(last, size=None)
    first = write_flow_folder_by_hand(tmp_path / "b_first", 3)
    (first / "x_00001.jpg").unlink()
    with pytest.raises(DataError, match=r"b_first: frame x_00001.jpg is missing; 2 frame\(s\) after the gap"):
        open_video(first, size=None)
    for name in ("x_00007.png", "x_00007 copy.jpg", "y_7.jpg"):  # files that are not flow frames are no gap
        (gap / name).write_bytes(b"not a frame")
    write_flow_folder_by_hand(gap, 6)
    with open_video(gap, size=None) as reader:
        assert reader.num_frames == 6
    # TSN's folder layout: RGB frames and flow side by side; RGB unless the flow patterns are named
    both = write_flow_folder_by_hand(tmp_path / "c", 4, patterns=("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"))
    for i in range(5):
        Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(both / f"img_{i + 1:05d}.jpg")
    with open_video(both, size=None) as reader:
        assert isinstance(reader, FrameFolderReader) and reader.num_frames == 5
    with open_video(both, size=None, frame_pattern=("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")) as reader:
        assert isinstance(reader, FlowFolderReader) and reader.num_frames == 4
    with pytest.raises(DataError, match=r"no flow frames named x_00001.jpg and y_00001.jpg"):
        open_video(both, frame_pattern=("x_{:05d}.jpg", "y_{:05d}.jpg"))


def test_the_clip_says_whether_a_folder_is_read_as_flow(tmp_path, moving_video):
    # TSN's layout: RGB frames and flow side by side; a flow clip (normalization flow) reads the flow
    both = write_flow_folder_by_hand(tmp_path / "both", 4, patterns=("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"))
    for i in range(5):
        Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(both / f"img_{i + 1:05d}.jpg")
    with open_video(both, size=None, modality="flow") as reader:
        assert isinstance(reader, FlowFolderReader) and reader.num_frames == 4
    with open_video(both, size=None, modality="rgb") as reader:
        assert isinstance(reader, FrameFolderReader) and reader.num_frames == 5
    spec = ClipSpec(clip_len=2, frame_size=SIZE, crop_size=24, normalization="flow")
    clip, _, _ = VideoDataset([VideoRecord(str(both), 0)], clip=spec, mode="val")[0]
    assert clip.shape == (2, 2, 24, 24) and torch.all(clip[1, 0] == 220 - 10 * 1 - 128)  # the centre clip: flow frames 1, 2

    with pytest.raises(
        DataError,
        match=r"moving.mp4: a video file, but the clips are optical flow; extract flow folders with `artnet prepare --to flow`",
    ):
        open_video(moving_video, modality="flow")
    rgb_only = tmp_path / "rgb"
    rgb_only.mkdir()
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(rgb_only / "img_00001.jpg")
    with pytest.raises(
        DataError, match=r"rgb: no optical flow \(frames named x_00001.jpg / y_00001.jpg or flow_x_00001.jpg / flow_y_00001.jpg\)"
    ):
        open_video(rgb_only, modality="flow")
    with pytest.raises(
        DataError, match=r"one frame pattern 'img_\{:05d\}.jpg', but the clips are optical flow: give an \(x, y\) pair"
    ):
        open_video(both, frame_pattern="img_{:05d}.jpg", modality="flow")
    with pytest.raises(DataError, match=r"an \(x, y\) pair of flow patterns .* but the clips are RGB frames"):
        open_video(both, frame_pattern=("x_{:05d}.jpg", "y_{:05d}.jpg"), modality="rgb")


def test_dataset_gives_normalised_two_channel_clips(tmp_path):
    records = [VideoRecord(str(write_flow_folder_by_hand(tmp_path / f"v{i}", 10)), i) for i in range(2)]
    common = {"clip": ClipSpec(clip_len=4, frame_size=SIZE, crop_size=24, normalization="flow")}
    clip, label, _ = VideoDataset(records, mode="train", **common)[1]
    assert clip.shape == (2, 4, 24, 24) and clip.dtype == torch.float32 and label == 1
    views, _, _ = VideoDataset(records, mode="test", num_clips=2, crops="10crop", **common)[0]
    assert views.shape == (20, 2, 4, 24, 24)
    first_x = 20 + 10 * 0 - 128  # flow frame 0: x = 20, y = 220
    assert torch.all(views[0, 0, 0] == first_x) and torch.all(views[0, 1, 0] == 220 - 128)
    assert torch.all(views[5, 0, 0] == 255 - 20 - 128) and torch.all(views[5, 1, 0] == 220 - 128)  # mirrored crops


# ---------------------------------------------------------------------------------------------------------
# artnet prepare --to flow


@pytest.fixture
def moving_clips(tmp_path):
    root = tmp_path / "clips"
    for label, motion in (("left", (-2, 0)), ("down", (0, 2))):
        (root / label).mkdir(parents=True)
        write_h264(root / label / f"{label}.mp4", moving_texture(motion), 25, {"crf": "10"})
    return root


def test_cli_prepare_flow_lists_resume_and_shards(moving_clips, tmp_path, capsys):
    out, shard = tmp_path / "flow", tmp_path / "shard"
    flow = ["--to", "flow", "--flow", "farneback", "--size", "32x40", "--quiet"]
    command = ["prepare", str(moving_clips), str(out), *flow]
    assert main([*command, "--lists", "folders", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "flow: 2 converted, 0 already done, 0 failed" in printed and "lists/folders.txt (2 videos, 2 classes)" in printed
    listed = load_list(out, list_file=out / "lists" / "folders.txt")
    assert sorted((r.video_id, r.num_frames) for r in listed.records) == [("down", NUM_FRAMES - 1), ("left", NUM_FRAMES - 1)]
    with open_video(out / "left" / "left", size=None) as reader:
        x, y = np.median(dequantize_flow(reader.read(range(reader.num_frames))), axis=(0, 1, 2))
    assert abs(x + 2) < 0.5 and abs(y) < 0.5

    (out / "down" / ".down.partial-deadbeef").mkdir()  # a run killed mid-video leaves only this
    assert main(command) == 0
    assert "flow: 0 converted, 2 already done" in capsys.readouterr().out

    assert main(["prepare", str(moving_clips), str(shard), *flow, "--shard", "1/2"]) == 0
    assert "flow: 1 converted" in capsys.readouterr().out
    assert [p.name for p in shard.rglob("x_00001.jpg")] == ["x_00001.jpg"]

    with pytest.raises(SystemExit) as refused:  # the option's range, before any work
        main([*command, "--flow-bound", "0"])
    assert refused.value.code == 2
    assert capsys.readouterr().err == "artnet prepare: error: argument --flow-bound: must be a positive number, not '0'\n"
