"""Caffe's binary weights (``.caffemodel``): a ``NetParameter`` protobuf, read and written.

A small protobuf wire-format codec for the few fields weights live in, with the field numbers
of ``caffe.proto`` (BVLC/caffe, and yjxiong/caffe's 3D fork that trained ARTNet)::

    NetParameter      name = 1, layers = 2 (V1LayerParameter), layer = 100 (LayerParameter)
    LayerParameter    name = 1, type = 2 (string), blobs = 7
    V1LayerParameter  layer = 1 (V0LayerParameter), name = 4, type = 5 (enum), blobs = 6
    V0LayerParameter  name = 1, type = 2 (string), blobs = 50
    BlobProto         num = 1, channels = 2, height = 3, width = 4 (legacy 4D shape),
                      data = 5 (packed float), shape = 7, double_data = 8 (packed double)
    BlobShape         dim = 1 (packed int64)

Everything else (layer definitions, diffs, solver fields) is skipped by its wire type, so any
Caffe fork's file reads. Float data is taken with ``numpy.frombuffer``: a released ~150 MB
model reads in well under a second. A hand-written codec rather than ``protobuf`` with a
schema: the schema would need these same field numbers, while the codec reads the packed
floats zero-copy and reports *where* a file is truncated or malformed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import CheckpointError

# Wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# V1LayerParameter.LayerType (caffe.proto): enum value -> the type string of LayerParameter.
V1_LAYER_TYPES = {
    0: "None",
    1: "Accuracy",
    2: "BNLL",
    3: "Concat",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    7: "EuclideanLoss",
    8: "Flatten",
    9: "HDF5Data",
    10: "HDF5Output",
    11: "Im2col",
    12: "ImageData",
    13: "InfogainLoss",
    14: "InnerProduct",
    15: "LRN",
    16: "MultinomialLogisticLoss",
    17: "Pooling",
    18: "ReLU",
    19: "Sigmoid",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    23: "TanH",
    24: "WindowData",
    25: "Eltwise",
    26: "Power",
    27: "SigmoidCrossEntropyLoss",
    28: "HingeLoss",
    29: "MemoryData",
    30: "ArgMax",
    31: "Threshold",
    32: "DummyData",
    33: "Slice",
    34: "MVN",
    35: "AbsVal",
    36: "Silence",
    37: "ContrastiveLoss",
    38: "Exp",
    39: "Deconvolution",
}
_V1_TYPE_IDS = {name: number for number, name in V1_LAYER_TYPES.items()}


@dataclass
class LayerBlobs:
    """The parameter blobs of one layer, as stored (shape and dtype of the file)."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


@dataclass
class CaffeModel:
    """A parsed ``.caffemodel``: its layers in file order (with or without blobs)."""

    layers: list[LayerBlobs]
    name: str = ""
    source: str = "<bytes>"

    def blobs(self) -> dict[str, LayerBlobs]:
        """Layers that carry blobs, by name; a name given twice is an error."""
        found: dict[str, LayerBlobs] = {}
        for layer in self.layers:
            if not layer.blobs:
                continue
            if layer.name in found:
                raise CheckpointError(f"{self.source}: layer {layer.name!r} appears twice with weights")
            found[layer.name] = layer
        return found


class _Malformed(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


# ---------------------------------------------------------------------------------------------
# Reading


def _read_varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _Malformed("truncated varint", start)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("varint longer than 10 bytes", start)


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: memoryview, start: int, end: int) -> Iterator[tuple[int, int, object, int]]:
    """``(field number, wire type, value, offset)``; a LEN value is the ``(begin, end)`` span."""
    pos = start
    while pos < end:
        offset = pos
        key, pos = _read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0", offset)
        if wire == _VARINT:
            value, pos = _read_varint(data, pos, end)
        elif wire == _LEN:
            length, pos = _read_varint(data, pos, end)
            if pos + length > end:
                raise _Malformed(f"field {number} needs {length} bytes, only {end - pos} left (truncated file?)", offset)
            value, pos = (pos, pos + length), pos + length
        elif wire in (_I32, _I64):
            size = 4 if wire == _I32 else 8
            if pos + size > end:
                raise _Malformed(f"field {number} is cut short (truncated file?)", offset)
            value, pos = (pos, pos + size), pos + size
        else:
            raise _Malformed(f"invalid wire type {wire} for field {number}", offset)
        yield number, wire, value, offset


def _string(data: memoryview, span: tuple[int, int], offset: int) -> str:
    try:
        return bytes(data[span[0] : span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("a name that is not UTF-8 text", offset) from None


def _dims(data: memoryview, span: tuple[int, int]) -> list[int]:
    dims = []
    for number, wire, value, offset in _fields(data, *span):
        if number != 1:
            continue
        if wire == _VARINT:
            dims.append(_signed64(value))
        elif wire == _LEN:  # packed
            pos, end = value
            while pos < end:
                dim, pos = _read_varint(data, pos, end)
                dims.append(_signed64(dim))
        else:
            raise _Malformed("BlobShape.dim with a wrong wire type", offset)
    return dims


def _numbers(data: memoryview, wire: int, span: tuple[int, int], dtype: str, offset: int) -> np.ndarray:
    if wire not in (_LEN, _I32 if dtype == "<f4" else _I64):
        raise _Malformed("blob data with a wrong wire type", offset)
    raw = data[span[0] : span[1]]
    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        raise _Malformed(f"packed data of {len(raw)} bytes is not a whole number of {itemsize}-byte values", offset)
    return np.frombuffer(raw, dtype=dtype)


def _blob(data: memoryview, span: tuple[int, int]) -> np.ndarray:
    shape: list[int] | None = None
    legacy: dict[int, int] = {}
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for number, wire, value, offset in _fields(data, *span):
        if number == 5:
            floats.append(_numbers(data, wire, value, "<f4", offset))
        elif number == 8:
            doubles.append(_numbers(data, wire, value, "<f8", offset))
        elif number == 7 and wire == _LEN:
            shape = _dims(data, value)
        elif number in (1, 2, 3, 4) and wire == _VARINT:
            legacy[number] = _signed64(value)
    chunks = floats or doubles or [np.zeros(0, np.float32)]
    values = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    if shape is None:
        # Caffe: a blob without `shape` but with any legacy field is num x channels x height x width.
        shape = [legacy.get(i, 0) for i in (1, 2, 3, 4)] if legacy else [values.size]
    if any(d < 0 for d in shape) or math.prod(shape) != values.size:
        raise _Malformed(f"blob of shape {tuple(shape)} holds {values.size} values", span[0])
    return values.astype(values.dtype.newbyteorder("="), copy=True).reshape(shape)  # owned, aligned, writable


# (name, type, blobs) field numbers of LayerParameter, V1LayerParameter, V0LayerParameter.
_CURRENT, _V1, _V0 = (1, 2, 7), (4, 5, 6), (1, 2, 50)


def _layer(data: memoryview, span: tuple[int, int], fields: tuple[int, int, int]) -> LayerBlobs:
    """Name, type and blobs of a LayerParameter / V1 / V0 message (``fields``: their numbers)."""
    name_field, type_field, blobs_field = fields
    name, kind, blobs = "", "", []
    nested: LayerBlobs | None = None
    for number, wire, value, offset in _fields(data, *span):
        if number == name_field and wire == _LEN:
            name = _string(data, value, offset)
        elif number == type_field and wire == _LEN:
            kind = _string(data, value, offset)
        elif number == type_field and wire == _VARINT:  # V1: an enum
            kind = V1_LAYER_TYPES.get(value, f"V1 type {value}")
        elif number == blobs_field and wire == _LEN:
            blobs.append(_blob(data, value))
        elif fields == _V1 and number == 1 and wire == _LEN:  # V1 wrapping a V0 layer
            nested = _layer(data, value, _V0)
    if nested is not None:
        name, kind, blobs = name or nested.name, kind or nested.type, blobs or nested.blobs
    return LayerBlobs(name, kind, blobs)


def parse_caffemodel(content: bytes | bytearray | memoryview, source: str = "<bytes>") -> CaffeModel:
    """Parse the bytes of a ``.caffemodel``; malformed input is a :class:`CheckpointError`."""
    data = memoryview(content)
    layers: list[LayerBlobs] = []
    name = ""
    try:
        for number, wire, value, offset in _fields(data, 0, len(data)):
            if number == 1 and wire == _LEN:
                name = _string(data, value, offset)
            elif number == 100 and wire == _LEN:
                layers.append(_layer(data, value, _CURRENT))
            elif number == 2 and wire == _LEN:
                layers.append(_layer(data, value, _V1))
    except _Malformed as error:
        where = f" after layer {layers[-1].name!r}" if layers else ""
        hint = " (this looks like a text .prototxt, not a binary .caffemodel)" if _looks_like_text(data) else ""
        raise CheckpointError(
            f"{source}: not a valid caffemodel: {error}, at byte {error.offset} of {len(data)}{where}{hint}"
        ) from None
    if not any(layer.blobs for layer in layers):
        raise CheckpointError(f"{source}: not a caffemodel with weights (no layer has blobs)")
    return CaffeModel(layers, name, source)


def _looks_like_text(data: memoryview) -> bool:
    head = bytes(data[:256])
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def read_caffemodel(path: str | Path) -> CaffeModel:
    """Read a ``.caffemodel`` file (current ``layer`` or legacy V1/V0 ``layers``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such caffemodel file")
    return parse_caffemodel(path.read_bytes(), source=str(path))


# ---------------------------------------------------------------------------------------------
# Writing


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _len_field(number: int, chunks: list[bytes]) -> list[bytes]:
    """A length-delimited field as a list of chunks: large payloads are never joined twice."""
    return [_key(number, _LEN) + _encode_varint(sum(len(c) for c in chunks)), *chunks]


def _varint_field(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _encode_varint(value)


def _encode_blob(array: np.ndarray | torch.Tensor, legacy_shape: bool) -> list[bytes]:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    chunks = []
    if legacy_shape:
        if array.ndim > 4:
            raise ValueError(f"a legacy num/channels/height/width blob has at most 4 axes, got shape {array.shape}")
        dims = (1,) * (4 - array.ndim) + array.shape
        chunks += [_varint_field(number, dim) for number, dim in zip((1, 2, 3, 4), dims)]
    if array.dtype == np.float64:
        chunks += _len_field(8, [array.astype("<f8").tobytes()])
    else:
        chunks += _len_field(5, [array.astype("<f4").tobytes()])
    if not legacy_shape:
        chunks += _len_field(7, _len_field(1, [b"".join(_encode_varint(d) for d in array.shape)]))
    return chunks


def _net_chunks(layers, name: str, v1_layers: bool, legacy_shape: bool) -> list[bytes]:
    if isinstance(layers, Mapping):
        layers = [LayerBlobs(layer_name, "", list(blobs)) for layer_name, blobs in layers.items()]
    chunks = _len_field(1, [name.encode()]) if name else []
    name_field, type_field, blobs_field, layer_field = (4, 5, 6, 2) if v1_layers else (1, 2, 7, 100)
    for layer in layers:
        body = _len_field(name_field, [layer.name.encode()])
        if v1_layers:
            body.append(_varint_field(type_field, _V1_TYPE_IDS.get(layer.type, 0)))
        elif layer.type:
            body += _len_field(type_field, [layer.type.encode()])
        for blob in layer.blobs:
            body += _len_field(blobs_field, _encode_blob(blob, legacy_shape))
        chunks += _len_field(layer_field, body)
    return chunks


def serialize_caffemodel(
    layers: Iterable[LayerBlobs] | Mapping[str, Sequence[np.ndarray | torch.Tensor]],
    name: str = "",
    *,
    v1_layers: bool = False,
    legacy_shape: bool = False,
) -> bytes:
    """Encode layers as a ``NetParameter``.

    By default in the current format: ``layer`` messages, blobs with ``shape``, as Caffe has
    saved since 2015. ``v1_layers`` writes the legacy V1 ``layers`` field (the type as V1's
    enum), ``legacy_shape`` the legacy num/channels/height/width blob dimensions (at most 4
    axes), as older Caffe did. float64 arrays go to ``double_data``.
    """
    return b"".join(_net_chunks(layers, name, v1_layers, legacy_shape))


def write_caffemodel(
    path: str | Path,
    layers: Iterable[LayerBlobs] | Mapping[str, Sequence[np.ndarray | torch.Tensor]],
    name: str = "",
    *,
    v1_layers: bool = False,
    legacy_shape: bool = False,
) -> Path:
    """Write a ``.caffemodel`` that Caffe's ``CopyTrainedLayersFrom`` (and :func:`read_caffemodel`) reads."""
    path = Path(path)
    with open(path, "wb") as file:
        file.writelines(_net_chunks(layers, name, v1_layers, legacy_shape))
    return path


# ---------------------------------------------------------------------------------------------
# Fitting a stored blob to a parameter


def _squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def fit_blob(blob: np.ndarray, shape: Sequence[int], where: str) -> torch.Tensor:
    """``blob`` as a float32 tensor of ``shape``.

    Shapes match when they agree but for axes of size 1: Caffe stores a BN vector as (1, C) or
    (1, C, 1, 1) and a legacy fc weight as (1, 1, out, in).
    """
    if _squeezed(blob.shape) != _squeezed(shape):
        raise CheckpointError(f"{where} has shape {tuple(blob.shape)}, expected {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)).reshape(tuple(shape))
