"""A Caffe TEST-phase executor built directly from a ``.prototxt``: the yardstick for the converter.

``ReferenceNet(load_net(prototxt), weights=read_caffemodel(path))`` runs a network the way
Caffe's ``Net::Forward`` would in the TEST phase: the layers in file order, each on the named
blobs it reads, in-place layers overwriting their blob, layers of the other phase left out, the
data layer replaced by inputs given by name. It knows nothing of artnet's models: every layer
is a few lines of ``torch.nn.functional`` following the Caffe layer's own definition, so a
converted artnet model that gives the same outputs has every weight in the right place.

Layer types (those of the released ARTNet / C3D nets, plus their TEST-phase loss and accuracy):
Convolution (2D/3D, group, dilation), BN (yjxiong/caffe's fused BN+scale: blobs scale, shift,
running mean, running variance), ReLU, Power, Concat, Eltwise, Pooling (AVE / MAX, 2D/3D,
Caffe's ceil rounding), Reshape, Flatten, Dropout, InnerProduct, Softmax, SoftmaxWithLoss,
Accuracy.

Without ``weights`` (or for layers the caffemodel lacks) the blobs are initialised by the
prototxt's fillers, as Caffe does; this is how tests make random caffemodels to convert.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError, ConfigError
from .caffemodel import CaffeModel, LayerBlobs, fit_blob
from .prototxt import Layer, Message, Net, triple

# cuDNN's CUDNN_BN_MIN_EPSILON: the released nets ran BN through cuDNN (the only engine of the
# 3D fork that takes 5-D blobs), which raises a smaller eps to this.
CUDNN_BN_MIN_EPSILON = 1e-5
FLT_MIN = 1.1754943508222875e-38

DATA_LAYER_TYPES = {"Data", "DummyData", "HDF5Data", "ImageData", "Input", "MemoryData", "VideoData", "WindowData"}


def enum_name(value: Any, names: Sequence[str]) -> str:
    """A prototxt enum field, written as a name (``AVE``) or as its number (``1``)."""
    return names[value] if isinstance(value, int) else str(value)


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


class CaffeLayer(nn.Module):
    """One layer. Subclasses define ``forward(*bottoms) -> list of tops``; parametrised ones
    also ``blob_shapes(*bottoms)`` and ``fillers()`` (a filler message or a constant per blob)."""

    def __init__(self, layer: Layer, source: str = "<prototxt>"):
        super().__init__()
        self.layer = layer
        self.where = f"{source}:{layer.line}: layer {layer.name!r} ({layer.type})"  # for error messages
        self.blobs = nn.ParameterList()

    def blob_shapes(self, *bottoms: torch.Tensor) -> list[tuple[int, ...]]:
        return []

    def fillers(self) -> list[Message | float | None]:
        return []

    def setup(self, *bottoms: torch.Tensor) -> None:
        """Create the blobs (on the bottoms' device, ``meta`` while the net is set up)."""
        shapes = self.blob_shapes(*bottoms)
        device = bottoms[0].device if bottoms else None
        self.blobs = nn.ParameterList(nn.Parameter(torch.empty(s, device=device), requires_grad=False) for s in shapes)


def _fill(blob: torch.Tensor, filler: Message | float | None, generator: torch.Generator) -> None:
    """Caffe's fillers (``include/caffe/filler.hpp``); no filler means constant 0."""
    if filler is None or isinstance(filler, (int, float)):
        blob.fill_(float(filler or 0.0))
        return
    kind = str(filler.get("type", "constant"))
    if kind == "constant":
        blob.fill_(float(filler.get("value", 0.0)))
    elif kind == "uniform":
        blob.uniform_(float(filler.get("min", 0.0)), float(filler.get("max", 1.0)), generator=generator)
    elif kind == "gaussian":
        blob.normal_(float(filler.get("mean", 0.0)), float(filler.get("std", 1.0)), generator=generator)
    elif kind in ("xavier", "msra"):
        fan_in = blob.numel() // blob.shape[0]
        fan_out = blob.numel() // blob.shape[1] if blob.dim() > 1 else fan_in
        norm = enum_name(filler.get("variance_norm", "FAN_IN"), ("FAN_IN", "FAN_OUT", "AVERAGE"))
        n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[norm]
        if kind == "xavier":
            bound = math.sqrt(3.0 / n)
            blob.uniform_(-bound, bound, generator=generator)
        else:
            blob.normal_(0.0, math.sqrt(2.0 / n), generator=generator)
    else:
        raise ConfigError(f"filler type {kind!r} is not supported by the reference executor")


class Convolution(CaffeLayer):
    def __init__(self, layer: Layer, source: str = "<prototxt>"):
        super().__init__(layer, source)
        p = layer.param("convolution_param")
        if "num_output" not in p or not ({"kernel_size", "kernel_h"} & set(p.fields)):
            raise ConfigError(f"{self.where}: convolution_param needs num_output and kernel_size")
        self.num_output = int(p.get("num_output"))
        self.bias_term = bool(p.get("bias_term", True))
        self.group = int(p.get("group", 1))
        self.kernel = triple(p, "kernel_size", 1, spatial_keys=("kernel_h", "kernel_w"))
        self.stride = triple(p, "stride", 1, spatial_keys=("stride_h", "stride_w"))
        self.pad = triple(p, "pad", 0, spatial_keys=("pad_h", "pad_w"))
        self.dilation = triple(p, "dilation", 1)
        self._fillers = [p.get("weight_filler"), p.get("bias_filler")]

    def blob_shapes(self, x):
        if x.shape[1] % self.group or self.num_output % self.group:
            raise ConfigError(
                f"{self.where}: {x.shape[1]} input and {self.num_output} output channels do not split into {self.group} groups"
            )
        spatial = x.dim() - 2
        shapes = [(self.num_output, x.shape[1] // self.group, *self.kernel[-spatial:])]
        return shapes + [(self.num_output,)] if self.bias_term else shapes

    def fillers(self):
        return self._fillers

    def forward(self, x):
        spatial = x.dim() - 2
        conv = {2: F.conv2d, 3: F.conv3d}[spatial]
        bias = self.blobs[1] if self.bias_term else None
        return [conv(x, self.blobs[0], bias, self.stride[-spatial:], self.pad[-spatial:], self.dilation[-spatial:], self.group)]


class BN(CaffeLayer):
    """yjxiong/caffe's ``BN``: per channel ``scale * (x - mean) / sqrt(var + eps) + shift`` (TEST phase)."""

    def __init__(self, layer: Layer, source: str = "<prototxt>"):
        super().__init__(layer, source)
        p = layer.param("bn_param")
        self.eps = max(float(p.get("eps", 1e-5)), CUDNN_BN_MIN_EPSILON)
        self._fillers = [p.get("slope_filler"), p.get("bias_filler"), 0.0, 1.0 if p.get("frozen", False) else 0.0]

    def blob_shapes(self, x):
        return [(1, x.shape[1])] * 4  # bn_layer.cpp: shape (1, C) for all four

    def fillers(self):
        return self._fillers

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale, shift, mean, variance = (blob.reshape(shape) for blob in self.blobs)
        factor = scale / torch.sqrt(variance + self.eps)
        return [torch.addcmul(shift - mean * factor, x, factor)]  # (x - mean) * factor + shift, one pass over x


class InnerProduct(CaffeLayer):
    def __init__(self, layer: Layer, source: str = "<prototxt>"):
        super().__init__(layer, source)
        p = layer.param("inner_product_param")
        self.num_output = int(p.get("num_output"))
        self.bias_term = bool(p.get("bias_term", True))
        self.axis = int(p.get("axis", 1))
        self.transpose = bool(p.get("transpose", False))
        self._fillers = [p.get("weight_filler"), p.get("bias_filler")]

    def blob_shapes(self, x):
        inputs = math.prod(x.shape[_axis(self.axis, x.dim()) :])
        weight = (inputs, self.num_output) if self.transpose else (self.num_output, inputs)
        return [weight, (self.num_output,)] if self.bias_term else [weight]

    def fillers(self):
        return self._fillers

    def forward(self, x):
        weight = self.blobs[0].t() if self.transpose else self.blobs[0]
        bias = self.blobs[1] if self.bias_term else None
        return [F.linear(x.flatten(_axis(self.axis, x.dim())), weight, bias)]


class ReLU(CaffeLayer):
    def forward(self, x):
        slope = float(self.layer.param("relu_param").get("negative_slope", 0.0))
        return [F.leaky_relu(x, slope) if slope else F.relu(x)]


class Power(CaffeLayer):
    def forward(self, x):
        p = self.layer.param("power_param")
        power, scale, shift = float(p.get("power", 1.0)), float(p.get("scale", 1.0)), float(p.get("shift", 0.0))
        return [torch.pow(x if (scale, shift) == (1.0, 0.0) else shift + scale * x, power)]


class Concat(CaffeLayer):
    def forward(self, *xs):
        p = self.layer.param("concat_param")
        axis = int(p.get("axis", p.get("concat_dim", 1)))
        return [torch.cat(xs, dim=_axis(axis, xs[0].dim()))]


class Eltwise(CaffeLayer):
    def forward(self, *xs):
        p = self.layer.param("eltwise_param")
        operation = enum_name(p.get("operation", "SUM"), ("PROD", "SUM", "MAX"))
        if operation == "SUM":
            coeffs = [float(c) for c in p.getall("coeff")] or [1.0] * len(xs)
            out = coeffs[0] * xs[0]
            for coeff, x in zip(coeffs[1:], xs[1:]):
                out = out.add(x, alpha=coeff)
        elif operation == "PROD":
            out = math.prod(xs[1:], start=xs[0])
        elif operation == "MAX":
            out = torch.stack(xs).amax(dim=0)
        else:
            raise ConfigError(f"{self.where}: Eltwise operation {operation} is not supported")
        return [out]


class Pooling(CaffeLayer):
    """Caffe rounds the output size up (``ceil``); AVE divides by the window clipped to the padded input."""

    def forward(self, x):
        p = self.layer.param("pooling_param")
        spatial = x.dim() - 2
        if p.get("global_pooling", False):
            kernel, stride, pad = tuple(x.shape[2:]), (1,) * spatial, (0,) * spatial
        else:
            kernel = triple(p, "kernel_size", 1, spatial_keys=("kernel_h", "kernel_w"))[-spatial:]
            stride = triple(p, "stride", 1, spatial_keys=("stride_h", "stride_w"))[-spatial:]
            pad = triple(p, "pad", 0, spatial_keys=("pad_h", "pad_w"))[-spatial:]
        method = enum_name(p.get("pool", "MAX"), ("MAX", "AVE", "STOCHASTIC"))
        if method == "AVE":
            pool = {2: F.avg_pool2d, 3: F.avg_pool3d}[spatial]
            return [pool(x, kernel, stride, pad, ceil_mode=True, count_include_pad=True)]
        if method == "MAX":
            pool = {2: F.max_pool2d, 3: F.max_pool3d}[spatial]
            return [pool(x, kernel, stride, pad, ceil_mode=True)]
        raise ConfigError(f"{self.where}: {method} pooling is not supported")


def caffe_reshape(shape: Sequence[int], dims: Sequence[int], axis: int = 0, num_axes: int = -1) -> list[int]:
    """The output shape of Caffe's Reshape: ``0`` copies an input axis, one ``-1`` is inferred."""
    start = axis if axis >= 0 else len(shape) + axis + 1
    end = len(shape) if num_axes == -1 else start + num_axes
    middle = [shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    out = list(shape[:start]) + middle + list(shape[end:])
    if out.count(-1) == 1:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(shape) // known if known else 0
    return out


class Reshape(CaffeLayer):
    def forward(self, x):
        p = self.layer.param("reshape_param")
        dims = [int(d) for d in (p.get("shape") or Message()).getall("dim")]
        out = caffe_reshape(list(x.shape), dims, int(p.get("axis", 0)), int(p.get("num_axes", -1)))
        if math.prod(out) != x.numel():
            raise ConfigError(f"{self.where}: cannot reshape {tuple(x.shape)} to {dims}")
        return [x.reshape(out)]


class Flatten(CaffeLayer):
    def forward(self, x):
        p = self.layer.param("flatten_param")
        return [x.flatten(_axis(int(p.get("axis", 1)), x.dim()), _axis(int(p.get("end_axis", -1)), x.dim()))]


class Dropout(CaffeLayer):
    """Identity in the TEST phase: Caffe scales by 1 / (1 - ratio) while training instead."""

    def forward(self, x):
        return [x]


class Softmax(CaffeLayer):
    def forward(self, x):
        axis = int(self.layer.param("softmax_param").get("axis", 1))
        return [F.softmax(x, dim=_axis(axis, x.dim()))]


def _rows(scores: torch.Tensor, labels: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores as (instances, classes) with the class axis last, and the labels as integers."""
    axis = _axis(axis, scores.dim())
    rows = scores.movedim(axis, -1).reshape(-1, scores.shape[axis])
    labels = labels.reshape(-1)
    if labels.numel() != rows.shape[0]:
        raise ConfigError(f"{labels.numel()} labels for {rows.shape[0]} predictions")
    return rows, labels.long()


class SoftmaxWithLoss(CaffeLayer):
    """Mean of ``-log max(softmax, FLT_MIN)`` at the labels (normalisation VALID, Caffe's default)."""

    def forward(self, scores, labels):
        axis = int(self.layer.param("softmax_param").get("axis", 1))
        rows, labels = _rows(scores, labels, axis)
        p = self.layer.param("loss_param")
        valid = torch.ones_like(labels, dtype=torch.bool) if "ignore_label" not in p else labels != int(p.get("ignore_label"))
        picked = F.softmax(rows, dim=1).gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1)
        loss = -(torch.log(picked.clamp(min=FLT_MIN)) * valid).sum()
        normalization = enum_name(
            p.get("normalization", "VALID" if p.get("normalize", True) else "BATCH_SIZE"), ("FULL", "VALID", "BATCH_SIZE", "NONE")
        )
        divisor = {"FULL": labels.numel(), "VALID": valid.sum(), "BATCH_SIZE": scores.shape[0], "NONE": 1}[normalization]
        tops = [loss / torch.clamp(torch.as_tensor(divisor, dtype=loss.dtype, device=loss.device), min=1.0)]
        return tops + [F.softmax(scores, dim=_axis(axis, scores.dim()))] if len(self.layer.tops) > 1 else tops


class Accuracy(CaffeLayer):
    """Share of instances whose label is among the ``top_k`` classes.

    Caffe (2015) ``partial_sort``s (score, class) pairs with ``std::greater``: of equal scores
    the higher class index ranks first.
    """

    def forward(self, scores, labels):
        p = self.layer.param("accuracy_param")
        rows, labels = _rows(scores, labels, int(p.get("axis", 1)))
        valid = torch.ones_like(labels, dtype=torch.bool) if "ignore_label" not in p else labels != int(p.get("ignore_label"))
        label_scores = rows.gather(1, labels.clamp(min=0).unsqueeze(1))
        classes = torch.arange(rows.shape[1], device=rows.device)
        ahead = (rows > label_scores) | ((rows == label_scores) & (classes > labels.unsqueeze(1)))
        correct = (ahead.sum(dim=1) < int(p.get("top_k", 1))) & valid
        return [correct.sum().to(scores.dtype) / valid.sum().clamp(min=1)]


LAYER_TYPES: dict[str, Callable[[Layer, str], CaffeLayer]] = {
    cls.__name__: cls
    for cls in (
        Convolution,
        BN,
        InnerProduct,
        ReLU,
        Power,
        Concat,
        Eltwise,
        Pooling,
        Reshape,
        Flatten,
        Dropout,
        Softmax,
        SoftmaxWithLoss,
        Accuracy,
    )
}


def included(layer: Layer, phase: str) -> bool:
    """Caffe's ``StateMeetsRule`` for the phase part of ``include`` / ``exclude`` rules."""
    includes, excludes = layer.message.getall("include"), layer.message.getall("exclude")
    if includes:
        return any(enum_name(rule.get("phase", phase), ("TRAIN", "TEST")) == phase for rule in includes)
    return not any(enum_name(rule.get("phase", phase), ("TRAIN", "TEST")) == phase for rule in excludes)


def data_shapes(net: Net, phase: str = "TEST") -> dict[str, tuple[int, ...] | None]:
    """The blobs the data layers of ``phase`` produce, with their shapes where the prototxt fixes them."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    for name, dims in zip(net.message.getall("input"), net.message.getall("input_shape")):
        shapes[str(name)] = tuple(int(d) for d in dims.getall("dim"))
    legacy_dims = [int(d) for d in net.message.getall("input_dim")]
    for index, name in enumerate(net.message.getall("input")):
        shapes.setdefault(str(name), tuple(legacy_dims[4 * index : 4 * index + 4]) or None)
    for layer in net:
        if layer.type not in DATA_LAYER_TYPES or not included(layer, phase):
            continue
        if layer.type in ("DummyData", "Input"):
            param = layer.param("dummy_data_param" if layer.type == "DummyData" else "input_param")
            found = [tuple(int(d) for d in s.getall("dim")) for s in param.getall("shape")]
            found = found * len(layer.tops) if len(found) == 1 else found
        elif layer.type == "VideoData":
            clips = _video_data_shape(layer)
            found = [clips] + [(clips[0],)] * (len(layer.tops) - 1)  # the label blob(s): one per clip
        else:
            found = []
        for index, top in enumerate(layer.tops):
            shapes[top] = found[index] if index < len(found) else None
    return shapes


def video_data_channels(layer: Layer) -> int:
    """Channels per frame of yjxiong/caffe's VideoData: 3 (``modality: RGB``) or 2 (``FLOW``, its default)."""
    return 3 if enum_name(layer.param("video_data_param").get("modality", "FLOW"), ("RGB", "FLOW")) == "RGB" else 2


def _video_data_shape(layer: Layer) -> tuple[int, int, int, int]:
    """yjxiong/caffe's VideoData: ``batch x (segments * length * channels) x crop x crop``."""
    p, transform = layer.param("video_data_param"), layer.param("transform_param")
    channels = video_data_channels(layer)
    frames = int(p.get("num_segments", 1)) * int(p.get("new_length", 1))
    crop = int(transform.get("crop_size", 0))
    height, width = (crop, crop) if crop else (int(p.get("new_height", 0)), int(p.get("new_width", 0)))
    return int(p.get("batch_size", 1)), channels * frames, height, width


class ReferenceNet(nn.Module):
    """A prototxt run as Caffe's TEST phase would run it.

    Args:
        net: the parsed prototxt (:func:`artnet.interop.prototxt.load_net`).
        weights: a caffemodel to copy blobs from, as Caffe's ``CopyTrainedLayersFrom``: layers
            matched by name, blob count and shapes checked, layers the net does not have ignored.
        phase: ``"TEST"`` (the default) or ``"TRAIN"`` selects the layers by their include rules;
            the computation is always the TEST-phase one (BN running statistics, no dropout).
        input_shapes: shapes for data blobs the prototxt leaves open; also overrides.
        seed: for the fillers of blobs not loaded from ``weights``.

    ``forward(data=...)`` returns every blob by name (inputs included). ``uninitialized``
    lists the parametrised layers that ``weights`` did not provide.
    """

    def __init__(
        self,
        net: Net,
        weights: CaffeModel | None = None,
        *,
        phase: str = "TEST",
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.source = net.source
        self.input_shapes = {**data_shapes(net, phase), **{k: tuple(v) for k, v in (input_shapes or {}).items()}}
        self.layers = nn.ModuleList()
        for layer in net:
            if not included(layer, phase) or layer.type in DATA_LAYER_TYPES:
                continue
            if layer.type not in LAYER_TYPES:
                raise ConfigError(
                    f"{net.source}:{layer.line}: layer {layer.name!r} of type {layer.type!r} is not supported by the "
                    f"reference executor (supported: {', '.join(sorted(LAYER_TYPES))})"
                )
            self.layers.append(LAYER_TYPES[layer.type](layer, net.source))
        names = [op.layer.name for op in self.layers if op.layer.type in ("Convolution", "BN", "InnerProduct")]
        if len(set(names)) != len(names):
            raise ConfigError(f"{net.source}: two parametrised layers share a name; weights could not be matched")
        self._setup()
        self.uninitialized = self._load(weights)
        generator = torch.Generator().manual_seed(seed)
        for op in self.layers:
            if op.layer.name in self.uninitialized:
                for blob, filler in zip(op.blobs, op.fillers()):
                    _fill(blob.data, filler, generator)

    def _setup(self) -> None:
        """Create every blob with its shape, as Caffe's ``Net::Init``: a pass on ``meta`` tensors."""
        missing = [name for name, shape in self.input_shapes.items() if shape is None]
        if missing:
            raise ConfigError(f"{self.source}: the shape of input {missing[0]!r} is not in the prototxt; give input_shapes")
        blobs = {name: torch.empty(shape, device="meta") for name, shape in self.input_shapes.items()}
        for op in self.layers:
            bottoms = self._bottoms(op, blobs)
            op.setup(*bottoms)
            blobs.update(zip(op.layer.tops, op(*bottoms)))
        self.to_empty(device="cpu")

    def _bottoms(self, op: CaffeLayer, blobs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        for name in op.layer.bottoms:
            if name not in blobs:
                raise ConfigError(f"{op.where} reads blob {name!r}, which nothing produced before it")
        return [blobs[name] for name in op.layer.bottoms]

    def _load(self, weights: CaffeModel | None) -> list[str]:
        stored = weights.blobs() if weights is not None else {}
        source = weights.source if weights is not None else ""
        uninitialized = []
        for op in self.layers:
            if not len(op.blobs):
                continue
            layer = stored.get(op.layer.name)
            if layer is None:
                uninitialized.append(op.layer.name)
                continue
            if len(layer.blobs) != len(op.blobs):
                raise CheckpointError(
                    f"{source}: layer {layer.name!r} has {len(layer.blobs)} blobs, {self.source} expects {len(op.blobs)}"
                )
            for index, (blob, target) in enumerate(zip(layer.blobs, op.blobs)):
                target.data.copy_(fit_blob(blob, target.shape, f"{source}: blob {index} of layer {layer.name!r}"))
        return uninitialized

    @property
    def output_names(self) -> list[str]:
        """Blobs no later layer reads: what ``caffe test`` would report."""
        produced: list[str] = []
        for op in self.layers:
            produced = [b for b in produced if b not in op.layer.bottoms or b in op.layer.tops]
            produced += [t for t in op.layer.tops if t not in produced]
        return produced

    def caffe_blobs(self) -> list[LayerBlobs]:
        """The blobs of every parametrised layer, ready for :func:`~artnet.interop.caffemodel.write_caffemodel`."""
        return [
            LayerBlobs(op.layer.name, op.layer.type, [b.detach().numpy().copy() for b in op.blobs])
            for op in self.layers
            if len(op.blobs)
        ]

    def forward(self, inputs: Mapping[str, torch.Tensor] | None = None, **named: torch.Tensor) -> dict[str, torch.Tensor]:
        blobs = {**(inputs or {}), **named}
        missing = [name for name in self.input_shapes if name not in blobs]
        if missing:
            raise ConfigError(f"{self.source}: give the input blob(s) {', '.join(missing)}")
        for op in self.layers:
            blobs.update(zip(op.layer.tops, op(*self._bottoms(op, blobs))))
        return blobs
