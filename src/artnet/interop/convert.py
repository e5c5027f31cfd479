"""The released Caffe weights as artnet checkpoints: every blob mapped, checked, nothing left over.

``convert_caffemodel(prototxt, caffemodel, "artnet_r18_d")`` reads the network definition for
what the weights do not say (the classifier's name and size, the dropout ratio, which layers
read the clip, the clip geometry) and the caffemodel for the blobs, and maps each blob to the
artnet module :func:`artnet.interop.caffe_layout.caffe_layers` names for its layer:

* Convolution: weight (out, in / groups, kT, kH, kW) and, where the layer has one, bias;
* BN: scale, shift, running mean, running variance -> ``weight``, ``bias``, ``running_mean``,
  ``running_var`` (yjxiong/caffe stores the variance itself, and eps is 1e-5 as in artnet);
* InnerProduct: weight (classes, 512), bias;
* the fixed cross-channel pooling convolutions (``pooling{i}``): checked to be all 0.5, then
  dropped, since artnet's ``SquarePool`` has no weights.

A blob left over, a layer missing, a count or shape that does not fit is an error naming the
layer. The checkpoint records the ``caffe`` input normalisation (BGR, 0-255, minus 104/117/123)
or, with ``rgb=True`` (conv1's input channels swapped), ``caffe_rgb`` (RGB order, same means).
A flow net (a 2-channel data layer: a 5-D DummyData / Input with 2 channels, or VideoData with
``modality: FLOW``) becomes a model with ``in_channels=2`` and the ``flow`` normalisation (x, y,
0-255 minus 128, as ARTNet's ``eval_net.py`` feeds its ``c3d_flow`` nets).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from ..data.clip import ClipSpec
from ..data.readers import UPSTREAM_FRAME_SIZE
from ..data.transforms import NORMALIZATIONS
from ..engine.checkpoint import model_payload
from ..errors import CheckpointError, ConfigError
from ..models import MODEL_OPTIONS, create_model
from ..models.smart import SquarePool
from .caffe_layout import caffe_layers
from .caffemodel import CaffeModel, LayerBlobs, fit_blob, read_caffemodel
from .export import Verification, compare_logits
from .prototxt import Layer, Net, load_net
from .reference import ReferenceNet, data_shapes, included, video_data_channels

POOLING_WEIGHT = 0.5
PARAMETRISED = ("Convolution", "BN", "InnerProduct")


class Converted(NamedTuple):
    model: nn.Module
    checkpoint: dict  # artnet checkpoint payload, ready for save_checkpoint


def load_prototxt(prototxt: str | Path | Net) -> Net:
    """A parsed network definition; a missing or malformed file is a :class:`ConfigError`."""
    if isinstance(prototxt, Net):
        return prototxt
    if not Path(prototxt).is_file():
        raise ConfigError(f"{prototxt}: no such prototxt file")
    return load_net(prototxt)  # a malformed file raises PrototxtError, a ConfigError


def _test_layers(net: Net) -> list[Layer]:
    return [layer for layer in net if included(layer, "TEST")]


def classifier_layer(net: Net) -> Layer:
    """The network's only InnerProduct layer: ``fc8`` (Kinetics) or ``fc`` (fine-tuning nets)."""
    found = [layer for layer in _test_layers(net) if layer.type == "InnerProduct"]
    if len(found) != 1:
        raise ConfigError(f"{net.source}: expected one InnerProduct (classifier) layer, found {len(found)}")
    return found[0]


def clip_inputs(net: Net) -> set[str]:
    """The data layer's clip blob and what Reshape layers make of it: the blobs conv1 may read."""
    blobs = {name for name in data_shapes(net) if name != "label"}
    for layer in _test_layers(net):
        if layer.type in ("Reshape", "Flatten") and set(layer.bottoms) & blobs:
            blobs.update(layer.tops)
    return blobs


def clip_readers(net: Net) -> list[Layer]:
    """The convolutions that read the clip (conv1, and conv1_t in ARTNet), in network order."""
    clip = clip_inputs(net)
    return [layer for layer in _test_layers(net) if layer.type == "Convolution" and set(layer.bottoms) & clip]


def clip_spec(net: Net, rgb: bool = False) -> ClipSpec:
    """The input contract of the net's TEST-phase data layer (VideoData, or a 5-D DummyData / Input):
    its geometry, and the normalisation of its modality (``caffe``, ``caffe_rgb`` with ``rgb``, or ``flow``)."""
    for layer in _test_layers(net):
        if layer.type == "VideoData":
            p, transform = layer.param("video_data_param"), layer.param("transform_param")
            frame_size = (int(p.get("new_height", 0)), int(p.get("new_width", 0)))
            return ClipSpec(
                clip_len=int(p.get("new_length", 1)),
                frame_size=frame_size if all(frame_size) else UPSTREAM_FRAME_SIZE,
                crop_size=int(transform.get("crop_size", 0)) or frame_size[0],
                normalization=_normalization(net, video_data_channels(layer), rgb),
                num_segments=int(p.get("num_segments", 1)),
            )
    for shape in data_shapes(net).values():
        if shape is not None and len(shape) == 5:  # N x C x T x H x W, as the deploy DummyData
            return ClipSpec(clip_len=shape[2], crop_size=shape[3], normalization=_normalization(net, shape[1], rgb))
    raise ConfigError(f"{net.source}: no 5-D clip input (DummyData / Input) or VideoData layer to read the clip geometry from")


def _normalization(net: Net, channels: int, rgb: bool) -> str:
    if channels == 2:
        if rgb:
            raise ConfigError(f"{net.source}: a flow net (2-channel clips); --rgb swaps the channels of RGB nets")
        return "flow"
    if channels != 3:
        raise ConfigError(f"{net.source}: the data layer gives {channels}-channel clips; artnet reads RGB (3) or flow (2)")
    return "caffe_rgb" if rgb else "caffe"


def read_class_names(path: str | Path, num_classes: int) -> list[str]:
    """One class name per line (surrounding spaces dropped, blank lines skipped), index = label."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such class-name file")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != num_classes:
        raise ConfigError(f"{path}: {len(names)} class names, the network has {num_classes} outputs")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{path}: class name {duplicate!r} is given twice")
    return names


def _targets(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The tensors a Caffe layer's blobs go to, in blob order."""
    if isinstance(module, nn.BatchNorm3d):
        return [("scale", module.weight), ("shift", module.bias), ("mean", module.running_mean), ("variance", module.running_var)]
    if isinstance(module, (nn.Conv3d, nn.Linear)):
        return [("weight", module.weight)] + ([("bias", module.bias)] if module.bias is not None else [])
    raise TypeError(f"no Caffe blobs for {type(module).__name__}")


def _check_fixed_pooling(layer: LayerBlobs, where: str) -> None:
    if len(layer.blobs) != 1:
        raise CheckpointError(
            f"{where}: the fixed pooling layer {layer.name!r} has {len(layer.blobs)} blobs, expected 1 (weights, no bias)"
        )
    blob = layer.blobs[0]
    if blob.ndim < 2 or blob.shape[1] != 2 or any(d != 1 for d in blob.shape[2:]):
        raise CheckpointError(
            f"{where}: the fixed pooling layer {layer.name!r} has weights of shape {blob.shape}, expected (C/2, 2, 1, 1, 1)"
        )
    if not np.all(blob == POOLING_WEIGHT):
        raise CheckpointError(
            f"{where}: the fixed pooling layer {layer.name!r} has weights in [{blob.min():g}, {blob.max():g}],"
            f" expected all {POOLING_WEIGHT} (artnet's SquarePool averages channel pairs)"
        )


def _names(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_caffe_weights(model: nn.Module, weights: CaffeModel, fc_name: str) -> None:
    """Copy every blob of ``weights`` into ``model``: each of its parameters and BN statistics is set."""
    mapping = caffe_layers(model, fc_name)
    stored = weights.blobs()
    name = getattr(model, "variant", type(model).__name__)
    left_over = [layer for layer in stored if layer not in mapping]
    missing = [layer for layer in mapping if layer not in stored]
    if left_over:
        raise CheckpointError(f"{weights.source}: blobs left over, {name} has no layer {_names(left_over)}")
    if missing:
        raise CheckpointError(f"{weights.source}: no blobs for {name}'s layer(s) {_names(missing)}")
    assigned: set[int] = set()
    with torch.no_grad():
        for layer_name, module in mapping.items():
            layer = stored[layer_name]
            if isinstance(module, SquarePool):
                _check_fixed_pooling(layer, weights.source)
                continue
            targets = _targets(module)
            if len(layer.blobs) != len(targets):
                expected = ", ".join(label for label, _ in targets)
                found = f"layer {layer_name!r} has {len(layer.blobs)} blobs"
                raise CheckpointError(f"{weights.source}: {found}, {name} expects {len(targets)} ({expected})")
            for blob, (label, tensor) in zip(layer.blobs, targets):
                tensor.copy_(fit_blob(blob, tensor.shape, f"{weights.source}: {label} blob of layer {layer_name!r}"))
                assigned.add(id(tensor))
    # Parameters and buffers alike (non-persistent ones included): the model is built without
    # initialisation, so anything not set here would be garbage.
    tensors = [*model.named_parameters(), *model.named_buffers()]
    unset = [key for key, tensor in tensors if id(tensor) not in assigned and not key.endswith("num_batches_tracked")]
    if unset:
        raise CheckpointError(f"{weights.source}: nothing sets {name}'s {_names(unset)}")


def _check_structure(net: Net, model: nn.Module, fc_name: str) -> None:
    """The prototxt's parametrised layers are exactly those of the model (else: wrong --model)."""
    ours = list(caffe_layers(model, fc_name))
    theirs = [layer.name for layer in _test_layers(net) if layer.type in PARAMETRISED]
    problems = []
    if extra := [n for n in theirs if n not in ours]:
        problems.append(f"its layer(s) {_names(extra)} are not in {model.variant}")
    if absent := [n for n in ours if n not in theirs]:
        problems.append(f"{model.variant}'s layer(s) {_names(absent)} are not in it")
    if problems:
        raise ConfigError(f"{net.source} does not describe {model.variant}: " + "; ".join(problems))


def convert_caffemodel(
    prototxt: str | Path | Net,
    caffemodel: str | Path | CaffeModel,
    model_name: str,
    *,
    rgb: bool = False,
    classes: Sequence[str] | str | Path | None = None,
) -> Converted:
    """Convert released Caffe weights into an artnet model and its checkpoint payload.

    Args:
        prototxt: the network definition the weights were trained with (deploy or train_val).
        caffemodel: the weights (a path, or a :class:`CaffeModel` already read).
        model_name: the artnet variant (``c3d_r18`` or ``artnet_r18_d`` for the release).
        rgb: swap the input channels of the layers that read the clip, so the model takes RGB.
        classes: class names (a list or a file with one per line); default ``class_000``, ...
    """
    net = load_prototxt(prototxt)
    clip = clip_spec(net, rgb)
    weights = caffemodel if isinstance(caffemodel, CaffeModel) else read_caffemodel(caffemodel)
    fc = classifier_layer(net)
    num_classes = int(fc.param("inner_product_param").get("num_output"))
    dropouts = [layer for layer in _test_layers(net) if layer.type == "Dropout"]
    options = {"num_classes": num_classes}
    if clip.channels != MODEL_OPTIONS["in_channels"]:
        options["in_channels"] = clip.channels
    if dropouts:
        options["dropout"] = float(dropouts[-1].param("dropout_param").get("dropout_ratio", 0.5))
    with torch.device("meta"):  # no initialisation to throw away: every tensor comes from the caffemodel
        model = create_model(model_name, **options)
    model.to_empty(device="cpu")
    _check_structure(net, model, fc.name)
    load_caffe_weights(model, weights, fc.name)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.num_batches_tracked.zero_()

    if rgb:
        with torch.no_grad():
            for name in model.pretrained_cfg.first_conv:
                conv = model.get_submodule(name)
                if conv.in_channels != 3:
                    raise ConfigError(f"{net.source}: {name} reads the clip with {conv.in_channels} channels; --rgb needs 3")
                conv.weight.copy_(conv.weight.flip(1))  # BGR -> RGB

    if classes is None:
        names = [f"class_{i:03d}" for i in range(num_classes)]
    elif isinstance(classes, (str, Path)):
        names = read_class_names(classes, num_classes)
    else:
        names = list(classes)
        if len(names) != num_classes:
            raise ConfigError(f"{len(names)} class names, the network has {num_classes} outputs")
    source = {
        "prototxt": Path(net.source).name,
        "caffemodel": Path(weights.source).name,
        "classifier": fc.name,
        "channels": NORMALIZATIONS[clip.normalization].channels,
    }
    payload = model_payload(model, names, clip, converted_from=source)
    return Converted(model.eval(), payload)


def verify_conversion(
    prototxt: str | Path | Net, weights: CaffeModel, model: nn.Module, *, rgb: bool = False, seed: int = 0
) -> Verification:
    """Run the reference executor and ``model`` on one random clip (batch 1; a 2-segment net
    gives two clips) and compare their classifier outputs (:func:`~artnet.interop.export.compare_logits`)."""
    net = load_prototxt(prototxt)
    reference = ReferenceNet(net, weights).eval()
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for name, shape in reference.input_shapes.items():
        shape = (1, *shape[1:])
        inputs[name] = torch.zeros(shape) if name == "label" else torch.randn(shape, generator=generator) * 60.0
    fc = classifier_layer(net)
    stem = next(iter(clip_readers(net)), None)
    if stem is None:
        raise ConfigError(f"{net.source}: no convolution reads the clip input")
    with torch.inference_mode():
        blobs = reference(inputs)
        clips = blobs[stem.bottoms[0]]
        logits = model.eval()(clips.flip(1) if rgb else clips)
    expected = blobs[fc.tops[0]]
    ran_on = f"{len(clips)} random clip{'s' if len(clips) > 1 else ''} (Gaussian, std 60, as mean-subtracted pixels)"
    return compare_logits([expected.numpy()], [logits.numpy()], "artnet", "Caffe reference", ran_on)
