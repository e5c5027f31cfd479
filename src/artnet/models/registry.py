"""Named variants of the paper, each with its architecture, defaults and provenance.

``create_model("artnet_r18_d", num_classes=101, shortcut="1x1x1")`` is the one way in. Each
variant carries a ``pretrained_cfg`` (timm's term, :class:`PretrainedCfg`): the input it expects
(a :class:`~artnet.data.ClipSpec`), which modules are its classifier and its first convolution
(code reads them: fine-tuning replaces the one, ``convert --rgb`` swaps the other), the paper's
figures and, where upstream released one, the Caffe weights to convert.

The model options and their defaults are ``VideoResNet``'s keyword arguments (:data:`MODEL_OPTIONS`
is read from its signature), plus ``depths`` and ``temporal_strides`` overriding the variant's own.
"""

from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..data.clip import ClipSpec
from ..errors import ConfigError, InvalidValue
from .resnet3d import Architecture, VideoResNet, conv_builder
from .resnet3d import check_options as check_resnet_options

_RELEASE_URL = "http://mcg.nju.edu.cn/models/ARTNet/"
_NO_BIAS_STEM = (False, True, True, True, True)
_NO_BIAS_STEM_AND_CONV2 = (False, False, True, True, True)


@dataclass(frozen=True)
class PretrainedCfg:
    """What a variant's weights expect and where its parts are, as data code reads."""

    clip: ClipSpec  # the input contract of the released (or paper) recipe
    num_classes: int  # of the released / paper weights (Kinetics-400)
    classifier: str  # the module a new head replaces
    first_conv: tuple[str, ...]  # the modules that read the clip (their input channels follow the clip's)
    paper: dict[str, float]  # Kinetics-400 val top-1 / top-5 (Tables 1 / 2), params and FLOPs where given
    caffemodels: tuple[str, ...]  # released Caffe weights
    prototxt: str | None  # the released deploy definition
    classes: tuple[str, ...] = ()  # class names of the loaded weights (create_model(pretrained=...)); () when unknown


@dataclass(frozen=True)
class Variant:
    name: str
    arch: Architecture
    description: str
    paper: dict[str, float] = field(default_factory=dict)  # Kinetics-400 val top-1/top-5, Table 1/2
    released: tuple[str, ...] = ()  # upstream .caffemodel files for this network
    prototxt: str | None = None  # upstream deploy definition, when released
    verified: bool = False  # True: layer by layer as a released prototxt; False: built from the paper

    @property
    def pretrained_cfg(self) -> PretrainedCfg:
        return PretrainedCfg(
            clip=ClipSpec(),  # the released recipes: 16 frames of 128 x 170, 112 crops, Caffe normalisation
            num_classes=400,
            classifier="fc",
            first_conv=tuple(".".join(filter(None, ("stem", name))) for name in conv_builder(self.arch.stem).input_convs),
            paper=dict(self.paper),
            caffemodels=tuple(_RELEASE_URL + f for f in self.released),
            prototxt=self.prototxt,
        )


def _stages(second: str, smart_stages: int = 4, first: str = "3d") -> tuple[tuple[str, str], ...]:
    return tuple((first, second if i < smart_stages else first) for i in range(4))


_VARIANTS = [
    Variant(
        "c2d_r18",
        Architecture(stem="2d", stages=_stages("2d", first="2d"), temporal_strides=(2, 1, 1, 1, 1)),
        "C2D-ResNet18: every kernel 1xkxk; 8 frames (conv1 stride 2), per-frame features averaged over time",
        paper={"top1": 61.2, "top5": 82.6},
    ),
    Variant(
        "c3d_r18",
        Architecture(stem="3d", stages=_stages("3d")),
        "C3D-ResNet18: 3x3x3 convolutions, conv1 3x7x7 (as released)",
        paper={"top1": 65.6, "top5": 85.7, "params_m": 33.37, "gflops": 19.58},
        released=("112_c3d_resnet_18_kinetics.caffemodel",),
        prototxt="models/112_c3d_resnet_18_deploy.prototxt",
        verified=True,
    ),
    Variant(
        "c3d_r34",
        Architecture(stem="3d", stages=_stages("3d"), depths=(3, 4, 6, 3)),
        "C3D-ResNet34: C3D-ResNet18's design with [3, 4, 6, 3] blocks",
        paper={"top1": 67.1, "top5": 86.9},
    ),
    Variant(
        "relation_r18_s",
        Architecture(stem="relation", stages=_stages("3d"), bias=_NO_BIAS_STEM),
        "Relation-ResNet18 (s): the relation branch alone at conv1",
        paper={"top1": 67.5, "top5": 87.0},
    ),
    Variant(
        "relation_r18_d",
        Architecture(stem="relation", stages=_stages("relation", smart_stages=3), bias=_NO_BIAS_STEM_AND_CONV2),
        "Relation-ResNet18 (d): relation-only blocks at conv1 and in conv2_x-conv4_x",
        paper={"top1": 67.1, "top5": 86.7},
    ),
    Variant(
        "artnet_r18_s",
        Architecture(stem="smart", stages=_stages("3d"), bias=_NO_BIAS_STEM),
        "ARTNet-ResNet18 (s): C3D-ResNet18 with a SMART conv1",
        paper={"top1": 67.7, "top5": 87.1, "params_m": 33.39, "gflops": 19.97},
    ),
    Variant(
        "artnet_r18_d",
        Architecture(stem="smart", stages=_stages("smart", smart_stages=3), bias=_NO_BIAS_STEM_AND_CONV2),
        "ARTNet-ResNet18 (d): SMART at conv1 and as the second conv of every block of conv2_x-conv4_x (as released)",
        paper={"top1": 69.2, "top5": 88.3, "params_m": 35.20, "gflops": 23.70},
        released=("112_artnet_resnet_18_kinetics.caffemodel", "112_artnet_tsn_resnet_18_kinetics.caffemodel"),
        prototxt="models/112_artnet_resnet_18_deploy.prototxt",
        verified=True,
    ),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _VARIANTS}

# Keywords every variant accepts, with their defaults: VideoResNet's (see it for their meaning), and
# the variant's own depths and temporal strides (None: keep them).
MODEL_OPTIONS: dict[str, Any] = {
    **{name: p.default for name, p in inspect.signature(VideoResNet).parameters.items() if name != "arch"},
    "depths": None,
    "temporal_strides": None,
}


def list_models() -> list[str]:
    return list(VARIANTS)


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(f"unknown model {_which_model(name)}") from None


def check_options(name: str, options: dict[str, Any]) -> None:
    """An :class:`~artnet.errors.InvalidValue` naming the model name or the first value of a known option
    that :func:`create_model` would refuse (``None`` stands for an option's default); builds nothing."""
    if name not in VARIANTS:
        raise InvalidValue("name", f"is not a model: {_which_model(name)}")
    variant = VARIANTS[name]
    for key, length in (("depths", len(variant.arch.depths)), ("temporal_strides", len(variant.arch.temporal_strides))):
        value = options.get(key)
        if value is not None and (len(value) != length or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
            raise InvalidValue(key, f"must be {length} positive integers, got {list(value)}")
    check_resnet_options(**{key: value for key, value in options.items() if key not in ("depths", "temporal_strides") and value is not None})


def create_model(
    name: str, pretrained: bool | str | os.PathLike = False, *, checkpoint_path: str | os.PathLike | None = None, **options: Any
) -> VideoResNet:
    """Build a named variant. Options: see ``MODEL_OPTIONS``; unknown keywords are an error.

    ``pretrained`` (or ``checkpoint_path``, as timm spells it): a checkpoint file, a model folder
    (``artnet export --format hf``) or a Hugging Face Hub repository id to load the weights from;
    options then override the checkpoint's, and a ``num_classes`` other than the weights' gets a new
    classifier (see :func:`artnet.engine.checkpoint.pretrained_model`). artnet hosts no weights of
    its own: ``pretrained=True`` needs a ``checkpoint_path``.
    """
    source = _pretrained_source(name, pretrained, checkpoint_path)
    if source is not None:
        from ..engine.checkpoint import pretrained_model

        return pretrained_model(name, source, **options)
    variant = get_variant(name)
    unknown = set(options) - set(MODEL_OPTIONS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"create_model({name!r}): unknown option {key!r}{_suggest(key, MODEL_OPTIONS)}")
    try:
        check_options(name, options)
    except InvalidValue as error:
        raise ConfigError(f"create_model({name!r}): {error.field} {error.problem}") from None
    given = dict(options)
    options = {**MODEL_OPTIONS, **options}
    arch = variant.arch
    if (depths := options.pop("depths")) is not None:
        arch = replace(arch, depths=tuple(int(d) for d in depths))
    if (strides := options.pop("temporal_strides")) is not None:
        arch = replace(arch, temporal_strides=tuple(int(s) for s in strides))
    model = VideoResNet(arch, **options)
    model.variant = name
    model.options = given  # what create_model needs to build this model again (checkpoints keep it)
    model.pretrained_cfg = variant.pretrained_cfg
    return model


def _which_model(name: str) -> str:
    return f"{name!r}{_suggest(name, VARIANTS)}; available: {', '.join(VARIANTS)}"


def _pretrained_source(
    name: str, pretrained: bool | str | os.PathLike, checkpoint_path: str | os.PathLike | None
) -> str | os.PathLike | None:
    if pretrained is True and checkpoint_path is None:
        raise ConfigError(
            f"create_model({name!r}, pretrained=True): artnet hosts no weights; give a checkpoint file, a model folder or "
            "a Hugging Face Hub repository id (artnet convert makes one from the released Caffe weights)"
        )
    if pretrained in (True, False, None):
        return checkpoint_path
    if checkpoint_path is not None and os.fspath(checkpoint_path) != os.fspath(pretrained):
        raise ConfigError(
            f"create_model({name!r}): pretrained={pretrained!r} and checkpoint_path={checkpoint_path!r} name different weights"
        )
    return pretrained


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
