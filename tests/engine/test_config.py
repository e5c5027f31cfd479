import dataclasses

import pytest

from artnet.engine.config import Config, config_from_dict, config_to_dict, load_config, save_config
from artnet.errors import ConfigError


def test_defaults_file_and_overrides_in_that_order(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("solver:\n  base_lr: 0.1\n  max_iter: 100\n  lr_steps: [50]\nmodel:\n  name: c3d_r18\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("_base_: base.yaml\nsolver:\n  max_iter: 200\n")
    config = load_config(recipe, ["solver.base_lr=1e-3", "model.depths=[1,1,1,1]", "train.bn=partial"])
    assert config.model.name == "c3d_r18"
    assert config.solver.max_iter == 200 and config.solver.base_lr == 0.001
    assert config.model.depths == [1, 1, 1, 1] and config.train.bn == "partial"
    assert config.solver.momentum == 0.9  # untouched default


def test_misspelt_key_in_a_file_names_file_line_and_closest_key(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("solver:\n  base_lr: 0.1\n  max_itr: 5\n")
    with pytest.raises(ConfigError) as error:
        load_config(recipe)
    message = str(error.value)
    assert f"{recipe}:3" in message and "'solver.max_itr'" in message and "did you mean 'solver.max_iter'" in message
    assert "\n" not in message


def test_misspelt_override_names_it():
    with pytest.raises(ConfigError, match=r"override 'solver\.base_lrr=0\.1'.*did you mean 'solver\.base_lr'"):
        load_config(None, ["solver.base_lrr=0.1"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("solver.max_iter=0.5", "must be an integer"),
        ("train.deterministic=maybe", "must be true or false"),
        ("solver.base_lr=fast", "must be a number"),
        ("model.depths=3", "must be a list"),
        ("model=3", "is a section"),
        ("nonsense", "must look like key=value"),
    ],
)
def test_values_are_type_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    "override",
    ["solver.base_lr=inf", "solver.base_lr=.inf", "solver.momentum=nan", "model.dropout=-.inf", "data.clip.clip_len=.inf"],
)
def test_no_setting_takes_an_infinite_or_undefined_number(override):
    key, value = override.split("=")
    expected = "an integer" if key == "data.clip.clip_len" else "a finite number"
    with pytest.raises(ConfigError, match=rf"^override '{override}': '{key}' must be {expected}, got "):
        load_config("tiny", [override])


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["name=x", "data.clip.frame_size=[64, 85]", "data.clip.crop_size=56"])
    path = save_config(config, tmp_path / "config.yaml")
    again = load_config(path)
    assert again == config
    assert config_from_dict(config_to_dict(config)) == config
    assert Config(name="abc").run_dir.as_posix() == "runs/abc"


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("solver: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_the_model_options_and_their_defaults_are_create_models():
    """ModelConfig mirrors create_model's keywords (read from VideoResNet's signature): same names and defaults."""
    from artnet.engine.config import ModelConfig
    from artnet.models import MODEL_OPTIONS

    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name != "name"}
    assert fields.keys() == MODEL_OPTIONS.keys()
    for key, default in fields.items():
        # None: the dataset's class count, and the clip's channels (data.clip.normalization)
        expected = None if key in ("num_classes", "in_channels") else MODEL_OPTIONS[key]
        assert default == expected, key


def test_the_clip_spec_is_a_section_of_data_and_its_fields_are_nowhere_else():
    from artnet.data import ClipSpec
    from artnet.engine.config import DataConfig

    clip_fields = {f.name for f in dataclasses.fields(ClipSpec)}
    assert not clip_fields & {f.name for f in dataclasses.fields(DataConfig)}
    config = load_config(None, ["data.clip.clip_len=8", "data.clip.frame_size=[64, 85]", "data.clip.crop_size=56"])
    assert config.data.clip == ClipSpec(clip_len=8, frame_size=(64, 85), crop_size=56)
    with pytest.raises(ConfigError, match=r"unknown config key 'data.clip_len' \(did you mean 'data.clip.clip_len'\?\)"):
        load_config(None, ["data.clip_len=8"])


def test_a_refused_value_names_the_key_and_its_line(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  clip:\n    clip_len: 8\n    crop_size: 300\n")
    with pytest.raises(ConfigError) as error:
        load_config(recipe)
    assert str(error.value) == f"{recipe}:4: 'data.clip.crop_size' 300 does not fit frames of 128 x 170 (frame_size)"


# Each case: a recipe (YAML), the line the error must point at, and the exact problem. Ranges, choices
# (read from the code that uses them) and combinations, within a section and across sections.
BAD_VALUES = [
    ("data:\n  num_workers: -1\n", 2, "'data.num_workers' must be 0 or more, got -1"),
    ("data:\n  max_bad_ratio: 1.5\n", 2, "'data.max_bad_ratio' must be a share between 0 and 1, got 1.5"),
    ("data:\n  format: csv\n", 2, "'data.format' must be one of ucf101, hmdb51, kinetics, list, folders, got 'csv'"),
    ("data:\n  format: hmdb51\n  split: 4\n", 3, "'data.split' must be one of 1, 2, 3, got 4"),
    ("data:\n  backend: pyavv\n", 2, "'data.backend' must be one of auto, pyav, decord, frames, got 'pyavv' (did you mean 'pyav'?)"),
    ("data:\n  class_order: random\n", 2, "'data.class_order' must be one of upstream, alphabetical, got 'random'"),
    ("data:\n  frame_pattern: img.jpg\n", 2, "'data.frame_pattern' must hold one '{}' field for the frame number, e.g. 'img_{:05d}.jpg', got 'img.jpg'"),
    ("solver:\n  batch_size: 0\n", 2, "'solver.batch_size' must be positive, got 0"),
    ("solver:\n  max_iter: 0\n", 2, "'solver.max_iter' must be positive, got 0"),
    ("solver:\n  base_lr: 0\n", 2, "'solver.base_lr' must be positive, got 0.0"),
    ("solver:\n  base_lr: .inf\n", 2, "'solver.base_lr' must be a finite number, got inf"),
    ("paper:\n  table: Table 2\n  top1: .nan\n", 3, "'paper.top1' must be a finite number, got nan"),
    ("solver:\n  momentum: 1.0\n", 2, "'solver.momentum' must be at least 0 and below 1, got 1.0"),
    ("solver:\n  weight_decay: -0.1\n", 2, "'solver.weight_decay' must be 0 or more, got -0.1"),
    ("solver:\n  gamma: 10\n", 2, "'solver.gamma' must be above 0 and at most 1 (the factor of each drop), got 10.0"),
    ("solver:\n  lr_policy: cosine\n", 2, "'solver.lr_policy' must be 'multistep' or 'step', got 'cosine'"),
    ("solver:\n  lr_steps: [500, 100]\n", 2, "'solver.lr_steps' must increase, got [500, 100]"),
    ("solver:\n  max_iter: 100\n  lr_steps: [50, 100]\n", 3,
     "'solver.lr_steps' [50, 100] reach max_iter (100), where a drop never applies: give steps below it, or [] for no drop"),
    ("solver:\n  max_iter: 100\n", 2,
     "'solver.lr_steps' [70000, 140000, 180000, 220000] reach max_iter (100), where a drop never applies: give steps below it, or [] for no drop"),
    ("solver:\n  lr_policy: step\n", 2, "'solver.lr_stepsize' must be a positive number of iterations for lr_policy step, got 0"),
    ("solver:\n  max_iter: 100\n  lr_steps: []\n  warmup_iters: 100\n", 4, "'solver.warmup_iters' must be at least 0 and below max_iter (100), got 100"),
    ("solver:\n  warmup_factor: 0\n", 2, "'solver.warmup_factor' must be above 0 and at most 1, got 0.0"),
    ("solver:\n  batch_size: 16\n  micro_batch: 32\n", 3, "'solver.micro_batch' 32 is larger than the batch it splits (batch_size 16)"),
    (
        "model:\n  name: artnet_r18d\n",
        2,
        (
            "'model.name' is not a model: 'artnet_r18d' (did you mean 'artnet_r18_d'?); available: "
            "c2d_r18, c3d_r18, c3d_r34, relation_r18_s, relation_r18_d, artnet_r18_s, artnet_r18_d"
        ),
    ),
    ("model:\n  shortcut: 2x2x2\n", 2, "'model.shortcut' must be '3x3x3' or '1x1x1', got '2x2x2'"),
    ("model:\n  init: he\n", 2, "'model.init' must be 'xavier' or 'pytorch', got 'he'"),
    ("model:\n  relation_channels: narrow\n", 2, "'model.relation_channels' must be 'reduce' or 'wide', got 'narrow'"),
    ("model:\n  dropout: 1.0\n", 2, "'model.dropout' must be at least 0 and below 1, got 1.0"),
    ("model:\n  width_mult: 0\n", 2, "'model.width_mult' must be positive, got 0.0"),
    ("model:\n  num_classes: 0\n", 2, "'model.num_classes' must be a positive integer, got 0"),
    ("model:\n  depths: [1, 1, 1]\n", 2, "'model.depths' must be 4 positive integers, got [1, 1, 1]"),
    ("model:\n  temporal_strides: [2, 1, 2, 2, 0]\n", 2, "'model.temporal_strides' must be 5 positive integers, got [2, 1, 2, 2, 0]"),
    ("model:\n  in_channels: 2\n", 2, "'model.in_channels' is 2, but data.clip.normalization caffe makes 3-channel clips; leave it out (the clip decides)"),
    ("train:\n  bn: freeze\n", 2, "'train.bn' must be one of train, frozen, partial, got 'freeze' (did you mean 'frozen'?)"),
    ("train:\n  precision: fp64\n", 2, "'train.precision' must be one of fp32, bf16, fp16, auto, got 'fp64' (did you mean 'fp16'?)"),
    ("train:\n  eval_protocol: 25x5\n", 2, "'train.eval_protocol' must be one of 1clip, 25x10, 10x3, 25x1, val, got '25x5' (did you mean '25x1'?)"),
    ("train:\n  device: cuda:1\n", 2, "'train.device' must be one of auto, cpu, cuda, got 'cuda:1' (did you mean 'cuda'?)"),
    ("train:\n  seed: -1\n", 2, "'train.seed' must be 0 or more, got -1"),
    ("train:\n  log_interval: 0\n", 2, "'train.log_interval' must be positive, got 0"),
    ("train:\n  checkpoint_interval: 0\n", 2, "'train.checkpoint_interval' must be positive, got 0"),
    ("train:\n  keep_last: 0\n", 2, "'train.keep_last' must be positive, got 0"),
    ("train:\n  dist_timeout: 0\n", 2, "'train.dist_timeout' must be a positive number of seconds, got 0.0"),
    ("train:\n  device: cpu\n  sync_bn: true\n", 3, "'train.sync_bn' needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU), but device is cpu"),
    ("train:\n  eval_protocol: val\n", 2, "'train.eval_protocol' val scores the centre clip of each TSN segment, but data.clip.num_segments is 1: use 1clip"),
    ("test:\n  protocol: 25x5\n", 2, "'test.protocol' must be one of 1clip, 25x10, 10x3, 25x1, val, got '25x5' (did you mean '25x1'?)"),
    ("test:\n  view_batch: 0\n", 2, "'test.view_batch' must be positive, got 0"),
    ("test:\n  num_workers: -2\n", 2, "'test.num_workers' must be 0 or more, got -2"),
    ("test:\n  splits: [1, 4]\n", 2, "'test.splits' must be among 1, 2, 3 for ucf101, got 4"),
    ("name: x\noutput_dir: runs/{nme}\n", 2, "'output_dir' may hold {name} and {split} and no other field, got 'runs/{nme}'"),
    ("name: ''\n", 1, "'name' must not be empty"),
]


@pytest.mark.parametrize("recipe, line, problem", BAD_VALUES, ids=[case[2].split("'")[1] + f"-{i}" for i, case in enumerate(BAD_VALUES)])
def test_every_bad_value_is_refused_at_load_naming_key_file_and_line(tmp_path, recipe, line, problem):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}:{line}: {problem}"


def test_a_bad_value_stops_the_command_in_one_line_before_anything_is_written(tmp_path, capsys):
    from artnet.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "tiny", f"output_dir={run_dir}", "data.num_workers=-1"]) == 2
    assert capsys.readouterr().err == "artnet train: error: override 'data.num_workers=-1': 'data.num_workers' must be 0 or more, got -1\n"
    assert not run_dir.exists()
    # a key not written but refused for a value that was: the line of the value it clashes with
    with pytest.raises(ConfigError, match=r"^override 'solver.max_iter=5': 'solver.lr_steps' \[6\] reach max_iter \(5\)"):
        load_config("tiny", ["solver.max_iter=5"])


# ---------------------------------------------------------------------------------------------------------
# flow clips and mirroring


def test_the_clip_decides_the_models_input_channels(tmp_path):
    from artnet.engine.builders import build_model

    small = ["model.width_mult=0.125", "model.depths=[1,1,1,1]"]
    for normalization, channels in (("caffe", 3), ("flow", 2)):
        config = load_config(None, [*small, f"data.clip.normalization={normalization}"])
        model = build_model(config, 5)
        assert (
            config.model.in_channels is None and model.stem.appearance.in_channels == model.stem.relation.in_channels == channels
        )
    assert load_config(None, ["data.clip.normalization=flow", "model.in_channels=2"]).model.in_channels == 2  # agreeing is fine
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model:\n  in_channels: 3\ndata:\n  clip:\n    normalization: flow\n")
    with pytest.raises(ConfigError) as error:
        load_config(recipe)
    assert str(error.value) == (
        f"{recipe}:2: 'model.in_channels' is 3, but data.clip.normalization flow makes 2-channel clips;"
        " leave it out (the clip decides)"
    )


def test_flow_folders_take_an_x_y_pair_of_frame_patterns(tmp_path):
    pair = 'data.frame_pattern=["flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"]'
    config = load_config(None, ["data.clip.normalization=flow", pair])
    assert config.data.frame_pattern == ["flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"]
    assert load_config(save_config(config, tmp_path / "saved.yaml")) == config
    assert load_config(None, ["data.frame_pattern=image_{:05d}.jpg"]).data.frame_pattern == "image_{:05d}.jpg"
    with pytest.raises(ConfigError, match=r"'data.frame_pattern' is an \[x, y\] pair of flow patterns, but the clips are RGB"):
        load_config(None, [pair])
    with pytest.raises(
        ConfigError, match=r"'data.frame_pattern' is one pattern 'img_\{:05d\}.jpg', but flow clips are read from \[x, y\] pairs"
    ):
        load_config(None, ["data.clip.normalization=flow", "data.frame_pattern=img_{:05d}.jpg"])
    with pytest.raises(ConfigError, match=r"'data.frame_pattern' is a list of 3"):
        load_config(None, ["data.clip.normalization=flow", "data.frame_pattern=[a, b, c]"])
    with pytest.raises(ConfigError, match=r"'data.frame_pattern' must be a string or a list, got 5"):
        load_config(None, ["data.frame_pattern=5"])


def test_flip_settings_are_checked_where_they_are_written(tmp_path):
    assert load_config(None, ["data.flip=false"]).data.flip is False
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  flip_label_map:\n    - [Swiping Left, Swiping Right]\n    - [Sliding Left, Swiping Left]\n")
    with pytest.raises(ConfigError) as error:
        load_config(recipe)
    assert (
        str(error.value)
        == f"{recipe}:2: 'data.flip_label_map' names 'Swiping Left' twice: a mirror turns a class into one other class"
    )
    recipe.write_text("data:\n  flip: false\n  flip_label_map: [[Swiping Left, Swiping Right]]\n")
    with pytest.raises(ConfigError, match=r":3: 'data.flip_label_map' has no use with flip: false"):
        load_config(recipe)


def test_a_flip_label_map_names_classes_of_the_dataset(synthetic):
    from artnet.engine.builders import build_dataset

    where = [f"data.root={synthetic.root}", f"data.annotations={synthetic.root}"]
    dataset = build_dataset(load_config("tiny", [*where, "data.flip_label_map=[[Rising, Falling]]"]), "train")
    assert dataset.mirrored_labels[synthetic.label("Rising")] == synthetic.label("Falling")
    assert dataset.mirrored_labels[synthetic.label("Plain")] == synthetic.label("Plain")
    with pytest.raises(
        ConfigError,
        match=r"^'data.flip_label_map' names 'Falln', not a class of the dataset \(did you mean 'Falling'\?\) \(.+\)$",
    ):
        build_dataset(load_config("tiny", [*where, "data.flip_label_map=[[Rising, Falln]]"]), "train")


def test_each_format_says_where_its_test_set_is(tmp_path):
    """data.test_annotations names the test set's file; for a folder tree (format folders), its root."""
    from artnet.data.annotations import FORMATS
    from artnet.engine.builders import build_annotations

    for subset, videos in (("train", ["a.mp4", "b.mp4"]), ("test", ["c.mp4"])):
        for name in ("jump", "run"):
            (tmp_path / subset / name).mkdir(parents=True)
            for video in videos:
                (tmp_path / subset / name / video).write_bytes(b"")
    config = load_config(None, ["data.format=folders", f"data.root={tmp_path / 'train'}", f"data.test_annotations={tmp_path / 'test'}"])
    train, test = build_annotations(config, "train"), build_annotations(config, "test")
    assert len(train) == 4 and all(f"{tmp_path / 'train'}/" in r.path for r in train.records)
    assert len(test) == 2 and all(f"{tmp_path / 'test'}/" in r.path for r in test.records) and test.classes == ["jump", "run"]
    assert FORMATS["kinetics"].test_set("videos", "train.csv", "val.csv") == ("videos", "val.csv")
    assert FORMATS["ucf101"].test_set("videos", "splits", None) == ("videos", "splits")  # the split folder's test lists
