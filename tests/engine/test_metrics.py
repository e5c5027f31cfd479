import numpy as np

from artnet.engine.distributed import DistributedEnv, ResumableSampler, shard_indices
from artnet.engine.metrics import ScoredVideos, compute_metrics, confusion_matrix, topk_accuracy, write_reports


def test_topk_and_mean_class_accuracy():
    scores = np.array([[3, 2, 1, 0], [0, 3, 2, 1], [1, 0, 3, 2], [0, 1, 3, 2.0]])
    labels = np.array([0, 2, 2, 1])
    assert topk_accuracy(scores, labels, 1) == 50.0
    assert topk_accuracy(scores, labels, 2) == 75.0
    metrics = compute_metrics(scores, labels)
    assert metrics.top1 == 50.0 and metrics.avg == (metrics.top1 + metrics.top5) / 2
    # class 0: 1/1, class 1: 0/1, class 2: 1/2 -> mean 50; class 3 has no video and is skipped
    assert metrics.mean_class_accuracy == 50.0
    assert confusion_matrix(scores.argmax(1), labels, 4)[2].tolist() == [0, 1, 1, 0]


def test_clip_level_accuracy_differs_from_video_level():
    clip_scores = np.array([[[2.0, 0], [0, 1.5], [0, 1.5]]])  # one video, three clips
    video = clip_scores.mean(axis=1)
    metrics = compute_metrics(video, np.array([0]), clip_scores)
    assert metrics.top1 == 0.0 and round(metrics.clip_top1, 2) == 33.33


def test_reports_are_written(tmp_path):
    scores = np.eye(3)[[0, 1, 2, 2]]
    labels = np.array([0, 1, 2, 1])
    metrics = compute_metrics(scores, labels, missing=1)
    write_reports(tmp_path, metrics, ScoredVideos("test", ["a", "b", "c", "d"], labels, scores, ["x", "y", "z"], ["e"]))
    assert (tmp_path / "per_class.csv").read_text().splitlines()[2] == "1,y,2,1,50.00"
    saved = np.load(tmp_path / "scores.npz")
    assert saved["video_ids"].tolist() == ["a", "b", "c", "d"] and saved["scores"].shape == (4, 3)
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    assert '"missing": 1' in (tmp_path / "metrics.json").read_text()


def test_sampler_shards_cover_an_epoch_and_resume_mid_epoch():
    envs = [DistributedEnv(rank=r, world_size=3) for r in range(3)]
    shards = []
    for env in envs:
        sampler = ResumableSampler(10, env, seed=5)
        sampler.set_epoch(2)
        shards.append(list(sampler))
    assert {len(s) for s in shards} == {4}
    assert set(sum(shards, [])) == set(range(10))
    again = ResumableSampler(10, envs[1], seed=5)
    again.set_epoch(2, start=3)
    assert list(again) == shards[1][3:]
    other_epoch = ResumableSampler(10, envs[1], seed=5)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != shards[1]


def test_evaluation_shards_count_every_video_once():
    parts = [shard_indices(10, DistributedEnv(rank=r, world_size=4)) for r in range(4)]
    assert sorted(sum(parts, [])) == list(range(10))
