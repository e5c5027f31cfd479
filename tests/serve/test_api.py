"""The HTTP API with FastAPI's test client: a good video, bad files, oversize uploads, a full queue,
the time limit, and no upload left behind."""

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from artnet.cli import main
from artnet.engine.predict import predict
from artnet.errors import DataError, InvalidValue
from artnet.serve import ServeSettings
from artnet.serve.app import _named

from .conftest import make_app


@pytest.fixture(scope="module")
def app(trained_checkpoint):
    return make_app(trained_checkpoint, queue=2, max_upload_mb=1)


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client
        assert not list(app.state.service.uploads.iterdir())  # every upload deleted
        assert app.state.service.admitted == 0


def upload(path, name=None):
    return {"video": (name or path.name, path.read_bytes(), "video/mp4")}


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "white").save(buffer, format="JPEG")
    return buffer.getvalue()


def wait_until_idle(app, timeout=60):
    deadline = time.monotonic() + timeout
    while app.state.service.admitted and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_model_card(client, trained_run):
    card = client.get("/v1/model").json()
    assert card["classes"] == [c.name for c in trained_run.dataset.classes]
    assert card["clip"]["clip_len"] == 8 and card["input_shape"] == [3, 8, 56, 56] and card["model"] == "artnet_r18_d"
    assert card["limits"] == {"max_upload_mb": 1.0, "queue": 2, "timeout_s": 120.0}


def test_a_video_gets_its_top5_timeline_and_maps(client, trained_run, trained_checkpoint):
    video, _ = trained_run.dataset.clips("test")[5]
    response = client.post("/v1/predict?images=true&stride=4", files=upload(video))
    assert response.status_code == 200, response.text
    answer = response.json()
    (expected,) = predict([str(video)], trained_checkpoint, protocol="25x1", device="cpu", acceleration="fp32", num_workers=0)
    assert [t["label"] for t in answer["top"]] == expected.labels and [t["score"] for t in answer["top"]] == expected.scores
    assert answer["video"] == video.name and answer["num_frames"] == 20 and answer["frame_rate"] == 25
    assert [w["first_frame"] for w in answer["timeline"]["windows"]] == [0, 4, 8, 12]
    assert set(answer["explanation"]["maps"]) == {"appearance", "relation"} and answer["explanation"]["block"] == "conv4_1"
    for name in ("timeline", "maps"):
        prefix, data = answer["images"][name].split(",", 1)
        assert prefix == "data:image/png;base64"
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.format == "PNG" and image.size[0] > 300

    lean = client.post("/v1/predict?timeline=false&maps=false&topk=2", files=upload(video)).json()
    assert set(lean) == {"video", "num_frames", "frame_rate", "protocol", "top", "seconds"} and len(lean["top"]) == 2
    raw = client.post("/v1/predict?maps=false", content=video.read_bytes(), headers={"content-type": "video/mp4"})
    assert raw.status_code == 200 and raw.json()["top"] == answer["top"]


@pytest.mark.parametrize(
    "content, why",
    [
        (b"just some text, not a video", "cannot open as a video"),
        (jpeg_bytes(), "a still image, not a video"),
    ],
)
def test_what_is_not_a_video_gets_422_naming_the_file_and_why(client, content, why):
    response = client.post("/v1/predict", files={"video": ("holiday.mp4", content, "video/mp4")})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error.startswith("holiday.mp4: ") and why in error and "artnet-serve" not in error  # never the private path


def test_requests_without_a_video_or_with_bad_options_get_4xx(client, trained_run):
    assert client.post("/v1/predict").status_code == 400
    assert client.post("/v1/predict", files={"other": ("x.txt", b"", "text/plain")}).json()["error"].startswith("no video")
    video = trained_run.dataset.clips("test")[0][0]
    bad_block = client.post("/v1/predict?block=conv9_1", files=upload(video))
    assert bad_block.status_code == 422 and "no block 'conv9_1'" in bad_block.json()["error"]
    assert client.post("/v1/predict?topk=0", files=upload(video)).status_code == 422


def test_an_upload_above_the_limit_gets_413_before_it_is_read(client):
    big = b"\0" * (1 << 20) + b"\0"
    declared = client.post("/v1/predict", files={"video": ("big.mp4", big, "video/mp4")})
    assert declared.status_code == 413 and "above the limit of 1 MB" in declared.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(8):
            yield b"\0" * (256 << 10)

    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/octet-stream"})
    assert streamed.status_code == 413 and "larger than the limit of 1 MB" in streamed.json()["error"]


def test_a_full_queue_answers_503_at_once_and_the_admitted_requests_are_answered(app, client, trained_run):
    """The model thread is held busy; of 5 simultaneous requests the queue (2) admits 2, which
    wait and are answered once it frees; the other 3 get 503 at once."""
    video = trained_run.dataset.clips("test")[0][0]
    release = threading.Event()
    app.state.service.executor.submit(release.wait, 60)
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(client.post, "/v1/predict?timeline=false&maps=false", files=upload(video)) for _ in range(5)]
        deadline = time.monotonic() + 30
        while sum(f.done() for f in futures) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = [f for f in futures if f.done()]
        assert len(refused) == 3 and all(
            f.result().status_code == 503 and f.result().headers["retry-after"] == "1" for f in refused
        )
        assert "busy" in refused[0].result().json()["error"] and app.state.service.admitted == 2
        release.set()
        answered = [f.result() for f in futures if f not in refused]
    assert [r.status_code for r in answered] == [200, 200] and answered[0].json()["top"] == answered[1].json()["top"]


def test_concurrent_requests_within_the_queue_are_all_answered(client, trained_run):
    videos = [path for path, _ in trained_run.dataset.clips("test")[:2]]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda v: client.post("/v1/predict?maps=false", files=upload(v)), videos))
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.json()["video"] for r in responses] == [v.name for v in videos]


def test_a_request_past_its_time_limit_gets_504_and_leaves_nothing(trained_checkpoint, trained_run):
    app = make_app(trained_checkpoint, timeout_s=1.0)
    video = trained_run.dataset.clips("test")[0][0]
    release = threading.Event()
    with TestClient(app) as client:
        app.state.service.executor.submit(release.wait, 60)
        response = client.post("/v1/predict", files=upload(video))
        assert response.status_code == 504 and "limit of 1 s" in response.json()["error"]
        assert app.state.service.admitted == 1  # its work has not run yet: the slot stays taken
        release.set()
        wait_until_idle(app)
        assert app.state.service.admitted == 0 and not list(app.state.service.uploads.iterdir())


def test_a_timeline_running_past_the_time_limit_is_stopped_with_504_and_leaves_nothing(
    trained_checkpoint, trained_run, monkeypatch
):
    """The top-k is answered in time, then the timeline's first window outlasts the limit (held here
    until the client has its 504, as the windows of a long video would add up): the timeline stops at
    its next time check rather than score the other windows, its slot is freed and its upload deleted."""
    app = make_app(trained_checkpoint, timeout_s=3.0)
    service = app.state.service
    timeline, scored, answered = service.predictor.timeline, [], threading.Event()

    def held_timeline(video, *, progress, **options):
        def slow_window(done):
            scored.append(done)
            answered.wait(60)
            progress(done)

        return timeline(video, progress=slow_window, **options)

    monkeypatch.setattr(service.predictor, "timeline", held_timeline)
    video = trained_run.dataset.clips("test")[0][0]
    with TestClient(app) as client:
        response = client.post("/v1/predict?maps=false&stride=4", files=upload(video))  # 4 windows
        answered.set()
        assert response.status_code == 504 and "limit of 3 s" in response.json()["error"]
        wait_until_idle(app)
        assert scored == [1] and service.admitted == 0 and not list(service.uploads.iterdir())
        assert client.post("/v1/predict?timeline=false&maps=false", files=upload(video)).status_code == 200


def test_the_model_is_loaded_once_for_the_top_k_and_the_maps(trained_checkpoint, monkeypatch):
    reads, load = [], torch.load

    def counted_load(*args, **kwargs):
        reads.append(args[0])
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counted_load)
    service = make_app(trained_checkpoint).state.service
    assert [str(path) for path in reads] == [trained_checkpoint]
    assert service.explainer.model is service.predictor.loaded.model is service.predictor.model  # fp32: applied in place


def test_a_model_folder_serves_as_its_checkpoint(client, trained_checkpoint, trained_run, tmp_path):
    folder = tmp_path / "model"
    assert main(["export", trained_checkpoint, "--format", "hf", "--out", str(folder)]) == 0
    video = trained_run.dataset.clips("test")[3][0]
    expected = client.post("/v1/predict?timeline=false", files=upload(video)).json()
    with TestClient(make_app(str(folder))) as from_folder:
        answer = from_folder.post("/v1/predict?timeline=false", files=upload(video)).json()
    assert answer["top"] == expected["top"] and answer["explanation"] == expected["explanation"]
    assert list(answer["explanation"]["maps"]) == ["appearance", "relation"]


def test_errors_name_no_path_of_the_server(app, client, trained_checkpoint, trained_run):
    video = trained_run.dataset.clips("test")[0][0]
    response = client.post("/v1/predict?class=Risng", files=upload(video))
    assert response.status_code == 422
    assert response.json()["error"] == "no class 'Risng' (did you mean 'Rising'?); the model knows 12 classes"
    service = app.state.service
    inner = DataError(f"{Path(trained_checkpoint).resolve()}: damaged, as is {service.uploads / 'a' / 'upload'}")
    assert _named(inner, str(service.uploads / "b" / "upload"), "clip.mp4", service.private) == (
        "the model: damaged, as is uploads/a/upload"
    )


def test_settings_are_checked():
    with pytest.raises(InvalidValue, match="'queue' must be a positive integer"):
        ServeSettings("model.pt", queue=0)
    with pytest.raises(InvalidValue, match="'max_upload_mb' must be positive"):
        ServeSettings("model.pt", max_upload_mb=0)
    with pytest.raises(InvalidValue, match="'stride' must be a positive number of frames"):
        ServeSettings("model.pt", stride=0)
