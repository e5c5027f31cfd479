"""From annotation files and videos on disk to batches of clips.

:class:`~artnet.data.clip.ClipSpec` is what a model's weights expect as input: it travels with them.

annotation -> :mod:`~artnet.data.annotations` (VideoRecord) -> :mod:`~artnet.data.sampling` (frame
indices) -> :mod:`~artnet.data.readers` (uint8 frames, resized in the decoder) ->
:mod:`~artnet.data.transforms` (crops, flips, normalisation) -> :mod:`~artnet.data.datasets` (samples).
"""

from .annotations import (
    Annotations,
    VideoRecord,
    hmdb51_classes,
    kinetics400_classes,
    load_annotations,
    load_folders,
    load_hmdb51,
    load_kinetics,
    load_list,
    load_ucf101,
)
from .clip import ClipSpec
from .datasets import Unreadable, VideoDataset, collate_test, seed_worker
from .readers import FRAME_PATTERNS, UPSTREAM_FRAME_SIZE, VideoReader, available_backends, open_video
from .sampling import segment_clips, test_clips, train_clip
from .transforms import NORMALIZATIONS, Crop, apply_crop, multiscale_crop_sizes, normalize, random_crop, test_crops

__all__ = [
    "ClipSpec",
    "Annotations",
    "VideoRecord",
    "hmdb51_classes",
    "kinetics400_classes",
    "load_annotations",
    "load_folders",
    "load_hmdb51",
    "load_kinetics",
    "load_list",
    "load_ucf101",
    "Unreadable",
    "VideoDataset",
    "collate_test",
    "seed_worker",
    "FRAME_PATTERNS",
    "UPSTREAM_FRAME_SIZE",
    "VideoReader",
    "available_backends",
    "open_video",
    "segment_clips",
    "test_clips",
    "train_clip",
    "NORMALIZATIONS",
    "Crop",
    "apply_crop",
    "multiscale_crop_sizes",
    "normalize",
    "random_crop",
    "test_crops",
]
