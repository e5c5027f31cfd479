import dataclasses

import pytest

from artnet.engine.config import Config, config_from_dict, config_to_dict, load_config, save_config
from artnet.errors import ConfigError


def test_defaults_file_and_overrides_in_that_order(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("solver:\n  base_lr: 0.1\n  max_iter: 100\nmodel:\n  name: c3d_r18\n")
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
