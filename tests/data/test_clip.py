"""ClipSpec: the one description of a model's input, checked once and carried as plain values."""

import ast
import dataclasses
from pathlib import Path

import pytest

import artnet
from artnet.data import ClipSpec
from artnet.data.clip import FlipSettings
from artnet.data.transforms import NORMALIZATIONS
from artnet.errors import CheckpointError, InvalidValue


def test_defaults_are_the_released_recipe():
    spec = ClipSpec()
    assert (spec.clip_len, spec.frame_stride, spec.frame_size, spec.crop_size, spec.normalization, spec.num_segments) == (
        16,
        1,
        (128, 170),
        112,
        "caffe",
        1,
    )
    assert spec.input_shape == (3, 16, 112, 112)


def test_plain_values_round_trip():
    spec = ClipSpec(clip_len=8, frame_stride=2, frame_size=[64, 85], crop_size=56, normalization="kinetics", num_segments=2)
    assert spec.frame_size == (64, 85)  # lists from YAML / checkpoints become a tuple
    assert spec.to_dict()["frame_size"] == [64, 85]
    assert ClipSpec.from_dict(spec.to_dict()) == spec
    assert ClipSpec.from_dict({"clip_len": 4}) == ClipSpec(clip_len=4)  # missing fields: the defaults


@pytest.mark.parametrize(
    "values, field, message",
    [
        ({"clip_len": 0}, "clip_len", "positive integer"),
        ({"frame_stride": -1}, "frame_stride", "positive integer"),
        ({"crop_size": 2.5}, "crop_size", "positive integer"),
        ({"frame_size": (64,)}, "frame_size", "two positive integers"),
        ({"crop_size": 200}, "crop_size", "does not fit frames of 128 x 170"),
        ({"normalization": "imagenet"}, "normalization", "must be one of"),
    ],
)
def test_bad_values_name_their_field(values, field, message):
    with pytest.raises(InvalidValue, match=message) as error:
        ClipSpec(**values)
    assert error.value.field == field


def test_unknown_or_bad_recorded_fields_are_checkpoint_errors():
    with pytest.raises(CheckpointError, match="ckpt.pt: unknown clip field 'fps'"):
        ClipSpec.from_dict({"fps": 25}, "ckpt.pt")
    with pytest.raises(CheckpointError, match="ckpt.pt: clip 'clip_len'"):
        ClipSpec.from_dict({"clip_len": 0}, "ckpt.pt")


def test_version_1_checkpoints_kept_it_in_two_places():
    legacy = {"input": {"clip_len": 8, "frame_stride": 1, "frame_size": [40, 52], "crop_size": 32}, "normalization": "caffe_rgb"}
    assert ClipSpec.from_checkpoint(legacy) == ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32, normalization="caffe_rgb")
    assert ClipSpec.from_checkpoint({"clip": ClipSpec(clip_len=4).to_dict()}) == ClipSpec(clip_len=4)


def test_differences_name_each_changed_field():
    assert ClipSpec().differences(ClipSpec(clip_len=8, frame_size=(64, 85), crop_size=56)) == [
        "clip_len 16 -> 8",
        "frame_size 128x170 -> 64x85",
        "crop_size 112 -> 56",
    ]


def test_the_spec_describes_itself():
    tsn = ClipSpec(clip_len=8, frame_stride=2, frame_size=(64, 85), crop_size=56, normalization="flow", num_segments=2)
    assert ClipSpec().summary() == "16x112x112" and tsn.summary() == "8x56x56 flow, 2 segments"
    assert tsn.replace(normalization="caffe").summary() == "8x56x56, 2 segments"
    assert tsn.describe() == (
        "Clips of 8 flow (x, y) frames taken every 2 frame(s), each frame resized to 64 x 85 (H x W) when decoded, cropped to"
        " 56 x 56, normalised as `flow` (`artnet.data.transforms.NORMALIZATIONS`): a tensor of shape `(N, 2, 8, 56, 56)`,"
        " (N, C, T, H, W). A TSN model: trained on 2 clips per video, averaging their logits."
    )
    assert ClipSpec().describe().startswith("Clips of 16 colour frames taken every 1 frame(s)")


def test_every_normalization_knows_its_channels():
    for name, preset in NORMALIZATIONS.items():
        assert ClipSpec(normalization=name).channels == len(preset.mean)


def test_flip_settings_are_read_from_where_each_checkpoint_kept_them():
    pairs = [["Swiping Left", "Swiping Right"]]
    settings = FlipSettings(flip_label_map=pairs)
    assert settings.flip_label_map == (("Swiping Left", "Swiping Right"),)
    assert settings.to_dict() == {"flip": True, "flip_label_map": pairs}
    assert FlipSettings.from_checkpoint({"flip": settings.to_dict()}) == settings
    before_flip = {"config": {"data": {"flip": False, "clip": {}}}}  # the settings in the training config only
    assert FlipSettings.from_checkpoint(before_flip) == FlipSettings(flip=False)
    assert FlipSettings.from_checkpoint({"converted_from": {}}) == FlipSettings()  # Caffe weights: mirrored, as upstream
    changed = settings.differences(FlipSettings(flip=False))
    assert changed == ["flip true -> false", "flip_label_map [[Swiping Left, Swiping Right]] -> []"]
    with pytest.raises(CheckpointError, match=r"ckpt.pt: flip 'flip_label_map' has no use with flip: false"):
        FlipSettings.from_dict({"flip": False, "flip_label_map": pairs}, "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"ckpt.pt: flip 'flip' must be true or false, got 'yes'"):
        FlipSettings.from_dict({"flip": "yes"}, "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"ckpt.pt: unknown flip field 'mirror'"):
        FlipSettings.from_dict({"mirror": True}, "ckpt.pt")


SOURCE = Path(artnet.__file__).parent
#: Where code outside data/clip.py names several of the spec's fields together, and why that is no copy of
#: the contract. Anything else that does (a list of the fields, a description, a dict of them) belongs in
#: ClipSpec, where a new field cannot be forgotten.
ALLOWED = {
    # the Caffe data layer's parameters (new_length, new_height / new_width, crop_size, num_segments) read into a spec
    ("interop/convert.py", "clip_spec"),
    # the dataset cuts each sample as its spec says: frame indices (clip_len, frame_stride, num_segments), training crop
    ("data/datasets.py", "VideoDataset._sample"),
}
TOGETHER = 3  # fields named in one function (or class, or module body) that make a listing


def clip_fields_named(source: str) -> dict[str, set[str]]:
    """``qualified name -> ClipSpec fields it names`` (attributes, keywords, parameters, names, strings) for
    every function, class and the module body of ``source``, each without the definitions nested in it."""
    fields = {f.name for f in dataclasses.fields(ClipSpec)}
    found: dict[str, set[str]] = {}

    def named(node) -> set[str]:
        words = set()
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute):
                words.add(n.attr)
            elif isinstance(n, (ast.keyword, ast.arg)):
                words.add(n.arg)
            elif isinstance(n, ast.Name):
                words.add(n.id)
            elif isinstance(n, ast.Constant) and isinstance(n.value, str):
                words.add(n.value)
        return words & fields

    def visit(node, name: str) -> None:
        definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        own = set().union(*(named(child) for child in ast.iter_child_nodes(node) if not isinstance(child, definitions)))
        found[name] = own
        for child in ast.iter_child_nodes(node):
            if isinstance(child, definitions):
                visit(child, f"{name}.{child.name}" if name else child.name)

    visit(ast.parse(source), "")
    return found


def test_the_scan_finds_a_listing():
    described = "def card(clip):\n    return f'{clip.clip_len} frames every {clip.frame_stride}, {clip.crop_size} px'\n"
    assert clip_fields_named(described)["card"] == {"clip_len", "frame_stride", "crop_size"}
    copied = "SPEC = dict(clip_len=8, crop_size=56)\nKEYS = ('normalization',)\n"
    assert clip_fields_named(copied)[""] == {"clip_len", "crop_size", "normalization"}


def test_the_fields_are_listed_in_the_dataclass_only():
    """No module outside data/clip.py lists the spec's fields: it asks the spec (summary, describe, to_dict ...)."""
    listings = {}
    for path in sorted(SOURCE.rglob("*.py")):
        module = path.relative_to(SOURCE).as_posix()
        if module == "data/clip.py":
            continue
        for name, fields in clip_fields_named(path.read_text(encoding="utf-8")).items():
            if len(fields) >= TOGETHER:
                listings[(module, name)] = sorted(fields)
    assert {place: fields for place, fields in listings.items() if place not in ALLOWED} == {}
    assert set(ALLOWED) <= set(listings), "an allowed place no longer names the fields: take it off ALLOWED"
