"""A checkpoint written before the input contract (ClipSpec) loads, tests and predicts as it did."""

import json
from pathlib import Path

import numpy as np
import pytest

from artnet.data import ClipSpec
from artnet.engine.checkpoint import VERSION, clip_spec, load_checkpoint
from artnet.engine.config import load_config
from artnet.engine.predict import predict
from artnet.engine.testing import run_test

from .conftest import MEDIA, require

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v1"


@pytest.fixture(scope="module")
def expected():
    require(MEDIA)
    return json.loads((LEGACY / "expected.json").read_text())


def test_a_version_1_checkpoint_reads_into_the_clip_spec():
    checkpoint = load_checkpoint(LEGACY / "artnet_r18_d_v1.pt")
    assert checkpoint["version"] == 1 < VERSION
    assert "input" not in checkpoint and "normalization" not in checkpoint
    assert clip_spec(checkpoint) == ClipSpec(clip_len=8, frame_stride=1, frame_size=(64, 85), crop_size=56, normalization="kinetics")


def test_it_tests_as_before(expected, tmp_path):
    config = load_config(
        None,
        ["data.format=list", f"data.root={MEDIA}", f"data.annotations={LEGACY / 'list.txt'}", "test.num_workers=0", "model.name=artnet_r18_d", "test.acceleration=fp32"],
    )
    (result,) = run_test(config, str(LEGACY / "artnet_r18_d_v1.pt"), protocol=expected["test_protocol"], out_dir=str(tmp_path))
    np.testing.assert_allclose(result.video_scores, np.array(expected["test_scores"]), rtol=1e-4, atol=1e-4)
    assert result.metrics.top1 == pytest.approx(expected["test_top1"])
    scores = np.load(tmp_path / "scores.npz")
    assert scores["video_ids"].tolist() == expected["test_video_ids"]


def test_it_predicts_as_before(expected):
    predictions = predict([str(MEDIA / path) for path in expected["list"]], str(LEGACY / "artnet_r18_d_v1.pt"), topk=3, protocol=expected["predict_protocol"], num_workers=0, acceleration="fp32")
    for prediction, before in zip(predictions, expected["predict"]):
        assert prediction.error is None and prediction.labels == before["labels"]
        np.testing.assert_allclose(prediction.scores, before["scores"], atol=2e-4)
