"""``artnet fuse``: late fusion of the score files ``artnet test`` writes, checked to score the same test."""

import json
import re

import numpy as np
import pytest

from artnet.cli import main
from artnet.engine.fusion import fuse_scores, load_scores
from artnet.engine.metrics import ScoredVideos, compute_metrics, write_reports
from artnet.errors import ConfigError, DataError

CLASSES = ["a", "b", "c", "d"]
IDS = [f"v{i}" for i in range(8)]
LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3])


def write_scores(folder, scores, ids=IDS, labels=LABELS, classes=CLASSES, missing=()):
    """A report folder as ``artnet test`` leaves it (the real writer), holding ``scores`` for ``ids``."""
    labels = np.asarray(labels)
    scored = ScoredVideos(str(folder), list(ids), labels, scores, list(classes), list(missing))
    tested = {"checkpoint": str(folder / "final.pt"), "protocol": "25x10"}
    write_reports(folder, compute_metrics(scores, labels), scored, extra=tested, plot=False)
    return folder / "scores.npz"


def table_rows(printed: str) -> dict[str, list[str]]:
    """The cells of each row of a printed markdown table, by its first cell."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")] for line in printed.splitlines() if line.startswith("| ")
    ]
    return {row[0]: row[1:] for row in rows}


@pytest.fixture
def streams(tmp_path):
    rng = np.random.default_rng(0)
    rgb, flow = rng.normal(size=(8, 4)), rng.normal(size=(8, 4)) * 3
    return rgb, flow, write_scores(tmp_path / "rgb", rgb), write_scores(tmp_path / "flow", flow)


def test_fusion_is_the_weighted_mean_of_the_logits(streams):
    rgb, flow, rgb_file, flow_file = streams
    equal = fuse_scores([load_scores(rgb_file), load_scores(flow_file)])
    np.testing.assert_allclose(equal.scores, (rgb + flow) / 2)
    tsn = fuse_scores([load_scores(rgb_file), load_scores(flow_file)], [1, 1.5])
    np.testing.assert_allclose(tsn.scores, (rgb + 1.5 * flow) / 2.5)
    assert tsn.metrics.top1 == 100 * np.mean((rgb + 1.5 * flow).argmax(axis=1) == LABELS)  # upstream's weighted sum ranks alike
    probabilities = fuse_scores([load_scores(rgb_file), load_scores(flow_file)], [1, 1.5], softmax=True)
    rgb_p, flow_p = (np.exp(x) / np.exp(x).sum(axis=1, keepdims=True) for x in (rgb, flow))
    np.testing.assert_allclose(probabilities.scores, (rgb_p + 1.5 * flow_p) / 2.5)


def test_videos_in_another_order_are_matched_by_id(streams, tmp_path):
    rgb, flow, rgb_file, _ = streams
    order = np.random.default_rng(1).permutation(8)
    shuffled = write_scores(tmp_path / "shuffled", flow[order], ids=[IDS[i] for i in order], labels=LABELS[order])
    fusion = fuse_scores([load_scores(rgb_file), load_scores(shuffled)])
    assert fusion.video_ids == IDS
    np.testing.assert_allclose(fusion.scores, (rgb + flow) / 2)


def test_the_scores_a_test_returns_fuse_as_its_score_file_does(tmp_path):
    """artnet demo fuses the float32 logits run_test returns: exactly as fusing the files they were written to."""
    rng = np.random.default_rng(2)
    rgb, flow = (rng.normal(size=(8, 4)).astype(np.float32) for _ in range(2))
    files = [load_scores(write_scores(tmp_path / name, scores)) for name, scores in (("rgb", rgb), ("flow", flow))]
    returned = [ScoredVideos(name, IDS, LABELS, scores, CLASSES) for name, scores in (("rgb", rgb), ("flow", flow))]
    from_files, from_tests = fuse_scores(files, [1, 1.5]), fuse_scores(returned, [1, 1.5])
    assert from_tests.scores.dtype == np.float64 and np.array_equal(from_tests.scores, from_files.scores)
    assert from_tests.metrics == from_files.metrics


def test_cli_prints_each_stream_and_the_fusion_and_writes_test_reports(streams, tmp_path, capsys):
    rgb, flow, rgb_file, flow_file = streams
    out = tmp_path / "fused"
    assert main(["fuse", str(rgb_file), str(flow_file), "--weights", "1", "1.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    fused = (rgb + 1.5 * flow) / 2.5
    metrics = compute_metrics(fused, LABELS)
    assert f"fusion: {metrics.summary()}  -> {out}" in printed
    assert "clip top-1" not in printed  # a fusion knows the videos' scores only, not their clips'
    assert json.loads((out / "metrics.json").read_text())["clip_top1"] is None
    rows = table_rows(printed)
    assert rows[str(rgb_file)][:2] == ["1", f"{compute_metrics(rgb, LABELS).top1:.2f}"]
    assert rows[str(flow_file)][:2] == ["1.5", f"{compute_metrics(flow, LABELS).top1:.2f}"]
    assert rows["fusion"][1:] == [
        f"{metrics.top1:.2f}",
        f"{metrics.top5:.2f}",
        f"{metrics.avg:.2f}",
        f"{metrics.mean_class_accuracy:.2f}",
    ]
    saved = load_scores(out / "scores.npz")
    np.testing.assert_allclose(saved.scores, fused)
    assert saved.video_ids == IDS and saved.classes == CLASSES and (out / "per_class.csv").is_file()


def test_the_fusions_report_replaces_its_own_and_nothing_else_and_never_an_input(streams, tmp_path, capsys):
    _, _, rgb_file, flow_file = streams
    fuse = ["fuse", str(rgb_file), str(flow_file)]
    before = rgb_file.read_bytes()
    assert main([*fuse, "--out", str(rgb_file.parent), "--force"]) == 2  # a test report, but its scores.npz is fused
    assert capsys.readouterr().err == f"artnet fuse: error: {rgb_file}: is an input of this command; write the output elsewhere\n"
    assert rgb_file.read_bytes() == before

    shared = tmp_path / "results"
    shared.mkdir()
    (shared / "metrics.json").write_text('{"the": "user\'s"}')
    (shared / "paper.tex").write_text("the user's")
    assert main([*fuse, "--out", str(shared)]) == 2
    assert capsys.readouterr() == (  # before the work: no table was printed
        "",
        f"artnet fuse: error: {shared}: holds files that are not an artnet test report (metrics.json, paper.tex); --force writes"
        " the report there all the same, or choose another --out\n",
    )
    assert (shared / "metrics.json").read_text() == '{"the": "user\'s"}'

    fused = tmp_path / "fused"
    assert main([*fuse, "--out", str(fused)]) == 0
    assert main([*fuse, "--weights", "1", "2", "--out", str(fused)]) == 0  # its own report: replaced
    assert json.loads((fused / "metrics.json").read_text())["fused"][1]["weight"] == 2
    assert main([*fuse, "--out", str(shared), "--force"]) == 0
    assert (shared / "paper.tex").read_text() == "the user's" and "fused" in json.loads((shared / "metrics.json").read_text())


@pytest.mark.parametrize(
    "other, message",
    [
        ({"ids": [*IDS[:7], "w7"]}, r"not the same videos: 1 only in {rgb} \(e.g. 'v7'\); 1 only in {other} \(e.g. 'w7'\)"),
        ({"classes": ["a", "b", "x", "d"]}, r"class 2 is 'c' in one, 'x' in the other"),
        ({"classes": ["a", "b", "c", "d", "e"]}, r"4 and 5 classes"),
        ({"labels": [0, 1, 2, 3, 0, 1, 3, 3]}, r"video 'v6' has label 2 in one, 3 in the other"),
    ],
    ids=["videos", "class-names", "class-count", "labels"],
)
def test_score_files_of_different_tests_are_refused_on_one_line(streams, tmp_path, capsys, other, message):
    _, _, rgb_file, _ = streams
    classes = other.get("classes", CLASSES)
    other_file = write_scores(tmp_path / "other", np.zeros((8, len(classes))), **other)
    assert main(["fuse", str(rgb_file), str(other_file)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"artnet fuse: error: {rgb_file} and {other_file}: ")
    assert re.search(message.format(rgb=re.escape(str(rgb_file)), other=re.escape(str(other_file))), error), error


def test_weights_and_files_are_checked(streams, tmp_path):
    _, _, rgb_file, flow_file = streams
    files = [load_scores(rgb_file), load_scores(flow_file)]
    with pytest.raises(ConfigError, match="1 weight\\(s\\) for 2 score files"):
        fuse_scores(files, [1])
    with pytest.raises(ConfigError, match="must be >= 0 and not all 0, got 0 0"):
        fuse_scores(files, [0, 0])
    with pytest.raises(ConfigError, match="two score files or more"):
        fuse_scores(files[:1])
    with pytest.raises(DataError, match="no such score file"):
        load_scores(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", scores=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"other.npz: not a score file of artnet test \(no 'video_ids'\)"):
        load_scores(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match="text.npz: not a readable score file"):
        load_scores(tmp_path / "text.npz")


def test_videos_without_prediction_carry_over(tmp_path):
    scores = np.eye(4)[LABELS]
    files = [load_scores(write_scores(tmp_path / name, scores, missing=["v8"])) for name in ("rgb", "flow")]
    fusion = fuse_scores(files)
    assert fusion.metrics.missing == 1 and fusion.metrics.top1 == 100.0
