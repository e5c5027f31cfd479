"""The .caffemodel codec: both layer formats, both blob shape forms, and clear errors."""

import numpy as np
import pytest

from artnet.errors import CheckpointError
from artnet.interop.caffemodel import (
    V1_LAYER_TYPES,
    LayerBlobs,
    _key,
    _len_field,
    _varint_field,
    fit_blob,
    parse_caffemodel,
    read_caffemodel,
    serialize_caffemodel,
    write_caffemodel,
)

from ..conftest import REFERENCE, require


def _layers(rng):
    return [
        LayerBlobs("data", "VideoData"),  # no blobs: kept in the layer list, absent from blobs()
        LayerBlobs(
            "conv1",
            "Convolution",
            [rng.standard_normal((4, 3, 3, 7, 7)).astype(np.float32), rng.standard_normal(4).astype(np.float32)],
        ),
        LayerBlobs("conv1_bn", "BN", [rng.standard_normal((1, 4)).astype(np.float32) for _ in range(4)]),
        LayerBlobs("fc8", "InnerProduct", [rng.standard_normal((5, 4)), rng.standard_normal(5)]),  # float64 -> double_data
    ]


def _assert_same(read, written, legacy_shape=False, v1_layers=False):
    # V1 stores the type as an enum, which has no value for VideoData or the 3D fork's BN.
    types = [t if not v1_layers or t in V1_LAYER_TYPES.values() else "None" for t in (layer.type for layer in written)]
    assert [(layer.name, layer.type) for layer in read.layers] == list(zip((layer.name for layer in written), types))
    for got, want in zip(read.layers, written):
        for blob, expected in zip(got.blobs, want.blobs, strict=True):
            assert blob.dtype == expected.dtype and blob.flags.writeable
            if legacy_shape:
                assert blob.shape == (1,) * (4 - expected.ndim) + expected.shape
            else:
                assert blob.shape == expected.shape
            np.testing.assert_array_equal(blob.reshape(expected.shape), expected)


def test_round_trip_current_format(tmp_path):
    written = _layers(np.random.default_rng(0))
    model = read_caffemodel(write_caffemodel(tmp_path / "w.caffemodel", written, name="C3D"))
    assert model.name == "C3D" and model.source == str(tmp_path / "w.caffemodel")
    _assert_same(model, written)
    assert list(model.blobs()) == ["conv1", "conv1_bn", "fc8"]


def test_round_trip_legacy_v1_layers_and_4d_shapes():
    written = [layer for layer in _layers(np.random.default_rng(1)) if layer.name != "conv1"]  # 5-D does not fit num/c/h/w
    model = parse_caffemodel(serialize_caffemodel(written, v1_layers=True, legacy_shape=True))
    _assert_same(model, written, legacy_shape=True, v1_layers=True)
    bias = model.blobs()["fc8"].blobs[1]
    assert bias.shape == (1, 1, 1, 5) and fit_blob(bias, (5,), "fc8 bias").shape == (5,)
    with pytest.raises(ValueError, match="at most 4 axes"):
        serialize_caffemodel(_layers(np.random.default_rng(1)), legacy_shape=True)


def test_v1_layers_with_shape_blobs():
    written = _layers(np.random.default_rng(2))
    _assert_same(parse_caffemodel(serialize_caffemodel(written, v1_layers=True)), written, v1_layers=True)


def test_v0_layer_inside_v1_and_unpacked_fields():
    """Very old files: a V0 layer (name 1, type 2, blobs 50) wrapped in V1; floats and dims not packed."""
    values = np.array([0.5, -2.0, 3.25], dtype="<f4")
    unpacked_floats = b"".join(_key(5, 5) + v.tobytes() for v in values)
    unpacked_dims = _varint_field(1, 1) + _varint_field(1, 3)
    blob = [unpacked_floats, *_len_field(7, [unpacked_dims])]
    v0 = _len_field(1, [b"ip"]) + _len_field(2, [b"innerproduct"]) + _len_field(50, blob)
    content = b"".join(_len_field(2, _len_field(1, v0)))
    layer = parse_caffemodel(content).layers[0]
    assert (layer.name, layer.type) == ("ip", "innerproduct")
    np.testing.assert_array_equal(layer.blobs[0], values.reshape(1, 3))


def test_fit_blob_refuses_another_shape():
    blob = np.zeros((1, 64), np.float32)
    assert fit_blob(blob, (64,), "x").shape == (64,)
    with pytest.raises(CheckpointError, match=r"conv1_bn: blob 0 has shape \(1, 64\), expected \(32,\)"):
        fit_blob(blob, (32,), "conv1_bn: blob 0")


@pytest.fixture
def valid(tmp_path):
    return serialize_caffemodel(_layers(np.random.default_rng(3)))


@pytest.mark.parametrize(
    "cut, message",
    [
        (lambda b: b[:2] + b"\xff", "truncated varint"),
        (lambda b: b[:40], "needs .* bytes, only .* left"),
        (lambda b: b[:-1], "after layer 'conv1_bn'"),  # the last layer (fc8) is cut short: the error says where
    ],
    ids=["varint", "early", "last-layer"],
)
def test_truncated_file_is_a_clear_error(tmp_path, valid, cut, message):
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(cut(valid))
    with pytest.raises(CheckpointError, match=rf"^{path}: not a valid caffemodel: .*{message}"):
        read_caffemodel(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "no layer has blobs"),
        (b"\x0f\x00\x00", "invalid wire type 7"),
        (b"\x00\x01", "field number 0"),
        (_len_field(100, [b"\0" * 10])[0], "field 100 needs 10 bytes, only 0 left"),  # a layer's header, no body
    ],
)
def test_garbage_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"^{path}: .*{message}"):
        read_caffemodel(path)


def test_blob_with_the_wrong_number_of_values(tmp_path):
    blob = [_varint_field(1, 2), _varint_field(2, 3), *_len_field(5, [np.zeros(5, "<f4").tobytes()])]  # 2 x 3 x 0 x 0 legacy
    path = tmp_path / "count.caffemodel"
    path.write_bytes(b"".join(_len_field(100, _len_field(1, [b"fc"]) + _len_field(7, blob))))
    with pytest.raises(CheckpointError, match=r"blob of shape \(2, 3, 0, 0\) holds 5 values"):
        read_caffemodel(path)


def test_prototxt_given_as_caffemodel(tmp_path):
    with pytest.raises(CheckpointError, match="looks like a text .prototxt"):
        read_caffemodel(require(REFERENCE / "models" / "112_c3d_resnet_18_deploy.prototxt"))
    with pytest.raises(CheckpointError, match="no such caffemodel file"):
        read_caffemodel(tmp_path / "missing.caffemodel")


def test_same_layer_twice_with_weights():
    layer = LayerBlobs("conv1", "Convolution", [np.zeros((2, 3, 1, 1, 1), np.float32)])
    with pytest.raises(CheckpointError, match="layer 'conv1' appears twice"):
        parse_caffemodel(serialize_caffemodel([layer, layer])).blobs()
