"""Typed run configuration: YAML files on disk, ``key=value`` overrides, saved resolved with each run.

The schema is a tree of dataclasses (below). The recipes of the paper's tables ship with the package
(``artnet/configs``) and are named like ``kinetics/artnet_r18_d`` (:func:`list_recipes`); a YAML file
of one's own is named by its path. A YAML file may start from others with ``_base_: [relative/path.yaml,
kinetics/_base, ...]`` (a path relative to it, or a packaged recipe's name); later values win,
dictionaries merge key by key.
Every key is checked against the schema: an unknown or misspelt key is an error naming the
file, the line and the closest valid key; every value is checked against its field's type, then
against what it may be (each dataclass's ``__post_init__``: ranges, choices, and combinations, those
across sections in :class:`Config`), so a config that loads is one a run can follow. A refused value is
one line: ``file:line: 'section.key' what is wrong``. The choices are those of the code that uses
them (model names from the registry, protocols, precisions, annotation formats ...), never a copy.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..data.annotations import FORMATS, HMDB51_CLASS_ORDERS, SPLITS
from ..data.clip import ClipSpec, FlipSettings
from ..data.readers import BACKENDS, check_frame_pattern
from ..errors import ConfigError, DataError, InvalidValue
from ..models.registry import check_options
from ..outputs import atomic_write
from .acceleration import AUTO, PRECISIONS, parse_setting
from .builders import BN_MODES
from .distributed import DEVICES
from .evaluate import PROTOCOLS
from .solver import check_schedule

# The first line of a run's saved config.yaml: a run folder with it was made by artnet train.
CONFIG_HEADER = "# artnet train: the resolved configuration of this run"


@dataclass
class ModelConfig:
    """Keywords of :func:`artnet.create_model` (see ``artnet.models.MODEL_OPTIONS``)."""

    name: str = "artnet_r18_d"
    num_classes: int | None = None  # None: the number of classes of the training set
    shortcut: str = "3x3x3"
    dropout: float = 0.2
    in_channels: int | None = None  # None: the clip's channels (data.clip.normalization: 3 for RGB, 2 for flow)
    width_mult: float = 1.0
    init: str = "xavier"
    relation_channels: str = "reduce"
    depths: list[int] | None = None
    temporal_strides: list[int] | None = None

    def __post_init__(self) -> None:
        check_options(self.name, {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "name"})


@dataclass
class DataConfig:
    """Where the videos and annotations are, and how clips are cut from them."""

    format: str = "ucf101"  # ucf101 | hmdb51 | kinetics | list | folders  (artnet.data.load_annotations)
    root: str = ""  # folder of videos or frame folders
    annotations: str = ""  # split folder (ucf101, hmdb51), training CSV (kinetics) or list file (list)
    split: int = 1  # ucf101 / hmdb51 split
    train_subset: str = "train"
    test_subset: str = "test"  # kinetics: "validate" (rows of the CSV's split column); "" = all rows
    test_annotations: str = ""  # kinetics / list: the test CSV or list; folders: the test root; "" = annotations
    classes: str = ""  # kinetics / list: a file of class names (one per line); "" = the defaults
    # frame folders: e.g. "image_{:05d}.jpg"; flow folders (clip.normalization flow): an [x, y] pair,
    # e.g. [flow_x_{:05d}.jpg, flow_y_{:05d}.jpg]; "" = the reader's default for the clip's modality
    frame_pattern: str | list[str] = ""
    class_order: str = "upstream"  # hmdb51: "upstream" (class_list.txt order) or "alphabetical"
    clip: ClipSpec = field(default_factory=ClipSpec)  # what the model's weights expect (artnet.data.ClipSpec)
    backend: str = "auto"
    num_workers: int = 4
    max_bad_ratio: float = 0.01  # training stops when more than this share of samples fail to decode
    max_missing_ratio: float = 0.0  # annotation entries whose file is missing
    flip: bool = True  # horizontal mirror: in training (p = 0.5) and the mirrored test crops; false where left and right differ
    # pairs of classes a mirror turns into each other, e.g. [[Swiping Left, Swiping Right]] (MMAction2's flip_label_map)
    flip_label_map: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        pattern, clip = self.frame_pattern, self.clip
        if isinstance(pattern, list):
            if len(pattern) != 2:
                raise InvalidValue("frame_pattern", f"is a list of {len(pattern)}: flow folders take an [x, y] pair of patterns")
            if clip.modality != "flow":
                rgb = f"the clips are RGB (clip.normalization {clip.normalization})"
                raise InvalidValue("frame_pattern", f"is an [x, y] pair of flow patterns, but {rgb}")
        elif pattern and clip.modality == "flow":
            flow = "flow clips are read from [x, y] pairs of patterns ('' finds them)"
            raise InvalidValue("frame_pattern", f"is one pattern {pattern!r}, but {flow}")
        for one in pattern if isinstance(pattern, list) else [pattern] if pattern else []:
            try:
                check_frame_pattern(one)
            except DataError:
                raise InvalidValue("frame_pattern", f"must hold one '{{}}' field for the frame number, e.g. 'img_{{:05d}}.jpg', got {one!r}") from None
        _ = self.flip_settings  # refused as a checkpoint's would be
        _choice(self, "format", tuple(FORMATS))
        if FORMATS[self.format].splits:
            _choice(self, "split", SPLITS)
        _choice(self, "class_order", HMDB51_CLASS_ORDERS)
        _choice(self, "backend", BACKENDS)
        _at_least(self, 0, "num_workers")
        _fraction(self, "max_bad_ratio", "max_missing_ratio")

    @property
    def flip_settings(self) -> FlipSettings:
        """``flip`` and ``flip_label_map`` as the checkpoints of the run record them."""
        return FlipSettings(self.flip, self.flip_label_map)


@dataclass
class SolverConfig:
    """SGD as the upstream Caffe solvers; batch sizes are the recipe's global batch."""

    batch_size: int = 224  # clips (or videos, with TSN segments) per iteration over all processes
    micro_batch: int = 0  # most clips per forward pass per process; 0 = the whole per-process batch
    base_lr: float = 0.1
    lr_policy: str = "multistep"  # multistep | step
    lr_steps: list[int] = field(default_factory=lambda: [70000, 140000, 180000, 220000])  # multistep
    lr_stepsize: int = 0  # step: lr drops every lr_stepsize iterations
    gamma: float = 0.1
    max_iter: int = 250000
    momentum: float = 0.9
    caffe_momentum: bool = True  # Caffe's v = mu v + lr g: rescale momentum when the lr changes
    weight_decay: float = 5e-4
    bias_lr_mult: float = 2.0  # upstream: biases at twice the lr and without weight decay
    clip_grad_norm: float = 0.0  # 0: off; fine-tuning upstream: 40
    warmup_iters: int = 0
    warmup_factor: float = 0.1  # lr at iteration 0 is base_lr x warmup_factor
    reference_batch: int = 0  # linear lr scaling: base_lr x batch_size / reference_batch; 0 = off

    def __post_init__(self) -> None:
        _at_least(self, 1, "batch_size", "max_iter")
        _at_least(self, 0, "micro_batch", "lr_stepsize", "weight_decay", "bias_lr_mult", "clip_grad_norm", "reference_batch")
        if self.micro_batch > self.batch_size:
            raise InvalidValue("micro_batch", f"{self.micro_batch} is larger than the batch it splits (batch_size {self.batch_size})", related=("batch_size",))
        if not self.base_lr > 0:
            raise InvalidValue("base_lr", f"must be positive, got {self.base_lr}")
        if not 0 <= self.momentum < 1:
            raise InvalidValue("momentum", f"must be at least 0 and below 1, got {self.momentum}")
        check_schedule(self)


@dataclass
class TrainConfig:
    init: str = ""  # checkpoint to start from (fine-tuning); a head of another shape is re-created
    resume: str = "auto"  # auto (newest checkpoint in the run dir) | never | a checkpoint path
    overwrite: bool = False  # true: a new run may replace the run (or the files a run writes) in its folder
    seed: int = 0
    deterministic: bool = False
    bn: str = "train"  # train | frozen | partial (TSN: freeze all BN but the first)
    sync_bn: bool = False  # upstream: per-process BN statistics
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto (bf16 where it trains right and clearly faster here)
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = True
    log_interval: int = 20
    eval_interval: int = 1000  # iterations; 0 = only at the end
    eval_protocol: str = "1clip"
    eval_max_videos: int = 0  # 0 = the whole validation set
    checkpoint_interval: int = 1000
    keep_last: int = 3
    device: str = "auto"  # auto | cpu | cuda
    dist_timeout: float = 600.0  # seconds a process waits for the others (several processes) before the run stops
    tensorboard: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        _choice(self, "bn", BN_MODES)
        _choice(self, "precision", (*PRECISIONS, AUTO))
        _choice(self, "eval_protocol", tuple(PROTOCOLS))
        _choice(self, "device", DEVICES)
        _at_least(self, 0, "seed", "eval_interval", "eval_max_videos")
        _at_least(self, 1, "log_interval", "checkpoint_interval", "keep_last")
        if not self.dist_timeout > 0:
            raise InvalidValue("dist_timeout", f"must be a positive number of seconds, got {self.dist_timeout}")
        if self.sync_bn and self.device == "cpu":
            raise InvalidValue("sync_bn", "needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU), but device is cpu", related=("device",))


@dataclass
class TestConfig:
    protocol: str = "25x10"  # 1clip | 25x10 | 10x3 | 25x1
    view_batch: int = 10  # views per forward pass (upstream deploy: 10)
    num_workers: int = 4
    splits: list[int] = field(default_factory=list)  # ucf101/hmdb51: evaluate several splits
    acceleration: str = "auto"  # auto (the fastest close to fp32 here, artnet.engine.auto_acceleration) | fp32 | bf16+channels_last ...

    def __post_init__(self) -> None:
        _choice(self, "protocol", tuple(PROTOCOLS))
        _at_least(self, 1, "view_batch")
        _at_least(self, 0, "num_workers")
        try:
            parse_setting(self.acceleration)
        except ConfigError as error:
            raise InvalidValue("acceleration", str(error)) from None


@dataclass
class PaperConfig:
    """What the paper reports for a recipe (``artnet configs`` lists it, model cards quote it); empty
    for recipes that are not in the paper."""

    table: str = ""  # where, e.g. "Table 2" (Kinetics-400 val) or "Table 6" (mean of the 3 splits)
    top1: float | None = None  # accuracy, %
    top5: float | None = None
    released: str = ""  # the released Caffe weights of this row, when there are some (artnet convert)

    def __post_init__(self) -> None:
        for name in ("top1", "top5"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 100:
                raise InvalidValue(name, f"must be a percentage in [0, 100], got {value}")
        if self.top1 is not None and self.top5 is not None and self.top5 < self.top1:
            raise InvalidValue("top5", f"{self.top5} is below top1 {self.top1}")
        if (self.top1 is not None or self.top5 is not None) and not self.table:
            raise InvalidValue("table", "must name where the paper reports the figures")

    @property
    def figures(self) -> str:
        """``"69.2 / 88.3"``, ``"93.5"``, or ``""``."""
        return " / ".join(f"{value:.1f}" for value in (self.top1, self.top5) if value is not None)


@dataclass
class Config:
    name: str = "run"
    output_dir: str = "runs/{name}"  # {name} and {split} are filled in
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)

    def __post_init__(self) -> None:
        """What the sections must agree on (the keys are dotted: each belongs to its own section)."""
        if not self.name:
            raise InvalidValue("name", "must not be empty")
        try:
            self.run_dir  # noqa: B018 (formatting the folder's name is the check)
        except (IndexError, KeyError, ValueError):
            raise InvalidValue("output_dir", f"may hold {{name}} and {{split}} and no other field, got {self.output_dir!r}") from None
        channels = self.data.clip.channels
        if self.model.in_channels is not None and self.model.in_channels != channels:
            raise InvalidValue(
                "model.in_channels",
                f"is {self.model.in_channels}, but data.clip.normalization {self.data.clip.normalization} makes {channels}-channel clips;"
                " leave it out (the clip decides)",
                related=("data.clip.normalization",),
            )
        if PROTOCOLS[self.train.eval_protocol].mode == "val" and self.data.clip.num_segments == 1:
            raise InvalidValue(
                "train.eval_protocol",
                "val scores the centre clip of each TSN segment, but data.clip.num_segments is 1: use 1clip",
                related=("data.clip.num_segments",),
            )
        if FORMATS[self.data.format].splits:
            for split in self.test.splits:
                if split not in SPLITS:
                    raise InvalidValue("test.splits", f"must be among {', '.join(map(str, SPLITS))} for {self.data.format}, got {split}")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name, split=self.data.split))


def _choice(section: Any, name: str, choices: tuple) -> None:
    value = getattr(section, name)
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidValue(name, f"must be one of {', '.join(map(str, choices))}, got {value!r}{hint}")


def _at_least(section: Any, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value < minimum:
            raise InvalidValue(name, f"must be {'positive' if minimum == 1 else f'{minimum} or more'}, got {value!r}")


def _fraction(section: Any, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if not 0 <= value <= 1:
            raise InvalidValue(name, f"must be a share between 0 and 1, got {value!r}")


# ----------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The defaults, then the recipe (a YAML file or a packaged recipe's name, with its ``_base_``
    files), then ``key=value`` overrides."""
    tree: dict[str, Any] = {}
    lines: dict[str, str] = {}
    if path is not None:
        _read_yaml_tree(recipe_path(path), tree, lines, seen=())
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r} must look like key=value, e.g. solver.base_lr=0.01")
        _set_dotted(tree, key.strip(), yaml.safe_load(text) if text.strip() else "")
        lines[key.strip()] = f"override {override!r}"
    return _build(Config, tree, prefix="", lines=lines)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain values (tuples as lists): what YAML files and checkpoints hold."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def save_config(config: Config, path: str | Path) -> Path:
    """The resolved config as YAML, under :data:`CONFIG_HEADER` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as file:
        file.write(f"{CONFIG_HEADER}\n{yaml.safe_dump(config_to_dict(config), sort_keys=False)}")
    return path


def written_by_artnet(path: Path) -> bool:
    """Whether ``path`` is a config :func:`save_config` wrote (a run folder's own), not a file of the user's."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline().rstrip("\n") == CONFIG_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def config_from_dict(tree: dict[str, Any], source: str = "checkpoint") -> Config:
    return _build(Config, tree, prefix="", lines={k: source for k in _dotted_keys(tree)})


def recipes_root() -> Path:
    """The folder of the packaged recipes."""
    return Path(str(resources.files("artnet") / "configs"))


def list_recipes() -> list[str]:
    """The packaged recipes' names (``kinetics/artnet_r18_d``, ...), without the ``_base`` files they share."""
    root = recipes_root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml") if not p.name.startswith("_"))


def recipe_path(name: str | Path, relative_to: Path | None = None) -> Path:
    """A config file: a path (relative to ``relative_to``'s folder for a ``_base_``), or a packaged recipe's name."""
    path = Path(name) if relative_to is None else relative_to.parent / name
    if path.is_file():
        return path
    packaged = recipes_root() / Path(name).with_suffix(".yaml")
    if packaged.is_file():
        return packaged
    where = f" (included from {relative_to})" if relative_to else ""
    close = difflib.get_close_matches(str(name), list_recipes(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; `artnet configs` lists the packaged recipes"
    raise ConfigError(f"{name}: no such config file or packaged recipe{where}{hint}")


def _read_yaml_tree(path: Path, tree: dict, lines: dict[str, str], seen: tuple[Path, ...]) -> None:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ includes itself")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(error, 'problem', error)})") from None
    if node is None:
        return
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: a config file must be a mapping of keys")
    data = yaml.safe_load(text)
    bases = data.pop("_base_", [])
    for base in [bases] if isinstance(bases, str) else bases:
        _read_yaml_tree(recipe_path(base, relative_to=path), tree, lines, seen + (path,))
    _merge(tree, data)
    _record_lines(node, prefix="", path=path, lines=lines)


def _record_lines(node: yaml.MappingNode, prefix: str, path: Path, lines: dict[str, str]) -> None:
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        lines[key] = f"{path}:{key_node.start_mark.line + 1}"
        if isinstance(value_node, yaml.MappingNode):
            _record_lines(value_node, f"{key}.", path, lines)


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
    node[leaf] = value


def _dotted_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys.append(prefix + key)
        if isinstance(value, dict):
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


# ----------------------------------------------------------------------------------------------
# Type checking


def _build(cls: type, values: dict[str, Any], prefix: str, lines: dict[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = _field_names(cls)
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            valid = [f"{prefix}{n}" for n in names]
            moved = [f"{prefix}{n}.{key}" for n in names if dataclasses.is_dataclass(hints[n]) and key in _field_names(hints[n])]
            close = moved or difflib.get_close_matches(dotted, valid, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; valid keys: {', '.join(valid)}"
            raise ConfigError(f"{_where(lines, dotted)}unknown config key '{dotted}'{hint}")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{_where(lines, dotted)}'{dotted}' is a section, got {value!r}")
            kwargs[key] = _build(kind, value, f"{dotted}.", lines)
        else:
            kwargs[key] = _coerce(value, kind, dotted, lines)
    try:
        return cls(**kwargs)
    except InvalidValue as error:
        dotted = f"{prefix}{error.field}"
        # where the value was written: the problem's own key, or one it clashes with; an override first (the last word)
        written = [key for key in (dotted, *(f"{prefix}{k}" for k in error.related), prefix.rstrip(".")) if key in lines]
        written.sort(key=lambda key: not lines[key].startswith("override"))
        raise ConfigError(f"{_where(lines, written[0]) if written else ''}'{dotted}' {error.problem}") from None


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _where(lines: dict[str, str], key: str) -> str:
    return f"{lines[key]}: " if key in lines else ""


def _coerce(value: Any, kind: Any, key: str, lines: dict[str, str]) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        for option in inner[:-1]:  # the first type the value is
            try:
                return _coerce(value, option, key, lines)
            except ConfigError:
                pass
        try:
            return _coerce(value, inner[-1], key, lines)
        except ConfigError:
            if len(inner) == 1:
                raise
        raise ConfigError(f"{_where(lines, key)}'{key}' must be {' or '.join(map(_expected, inner))}, got {value!r}")
    if origin in (list, tuple):
        items = typing.get_args(kind)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{_where(lines, key)}'{key}' must be a list, got {value!r}")
        if origin is list:
            return [_coerce(v, items[0], f"{key}[{i}]", lines) for i, v in enumerate(value)]
        if len(value) != len(items):
            raise ConfigError(f"{_where(lines, key)}'{key}' must be a list of {len(items)}, got {value!r}")
        return tuple(_coerce(v, item, f"{key}[{i}]", lines) for i, (v, item) in enumerate(zip(value, items)))
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            # no setting takes an infinite or undefined number; one let through (base_lr: .inf) would train to NaN
            if not math.isfinite(number):
                raise ConfigError(f"{_where(lines, key)}'{key}' must be a finite number, got {value!r}")
            return number
    elif kind is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {kind} for {key}")
    raise ConfigError(f"{_where(lines, key)}'{key}' must be {_expected(kind)}, got {value!r}")


def _expected(kind: Any) -> str:
    if typing.get_origin(kind) in (list, tuple):
        return "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
