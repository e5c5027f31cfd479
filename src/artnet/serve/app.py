"""The FastAPI application of ``artnet serve`` (see the package doc for what it promises).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time.
"""

import asyncio
import base64
import io
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ArtnetError, ConfigError, DataError, InvalidValue

MEGABYTE = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    """What a server runs and the limits it keeps."""

    checkpoint: str
    max_upload_mb: float = 100.0  # bytes beyond this: 413
    queue: int = 4  # requests admitted at once (one runs, the others wait); one more: 503
    timeout_s: float = 120.0  # a request's time limit, upload included: 504
    protocol: str = "25x1"  # of the top-k (the clips averaged, as artnet predict)
    device: str = "auto"
    acceleration: str = "auto"
    num_workers: int = 0  # decoding processes per request (0: in the server's own process)
    view_batch: int = 10
    stride: int | None = None  # of the timeline's windows (None: a clip span); a request's ?stride= wins
    block: str | None = None  # of the maps (None: explain's default); a request's ?block= wins

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0:
            raise InvalidValue("max_upload_mb", f"must be positive, got {self.max_upload_mb}")
        if isinstance(self.queue, bool) or not isinstance(self.queue, int) or self.queue < 1:
            raise InvalidValue("queue", f"must be a positive integer, got {self.queue!r}")
        if not self.timeout_s > 0:
            raise InvalidValue("timeout_s", f"must be positive, got {self.timeout_s}")
        if self.stride is not None and self.stride < 1:
            raise InvalidValue("stride", f"must be a positive number of frames, got {self.stride}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MEGABYTE)


class RequestError(Exception):
    """Answered as ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class _OutOfTime(Exception):
    """Raised inside a request's work when its time limit has passed: it stops there."""


class Service:
    """The model (loaded once), the one thread that runs it, the admission count and the upload folder."""

    def __init__(self, settings: ServeSettings):
        from ..engine.evaluate import get_protocol
        from ..engine.explain import Explainer, resolve_block
        from ..engine.predict import Predictor

        get_protocol(settings.protocol)  # an unknown protocol or block fails now, not at the first request
        self.settings = settings
        self.predictor = Predictor(
            settings.checkpoint, device=settings.device, acceleration=settings.acceleration, view_batch=settings.view_batch
        )
        self.explainer = Explainer(self.predictor.loaded)  # the Predictor's model: loaded once, kept once
        resolve_block(self.explainer.model, settings.block)
        model = Path(self.predictor.checkpoint)
        self.private = {str(model.resolve()): "the model"}  # the paths of this machine that no answer shows
        if os.sep in str(model):  # a relative path: as read, it still names folders here
            self.private[str(model)] = "the model"
        self.admitted = 0  # requests between admission and the end of their work; changed on the event loop only

    def open(self) -> None:
        """While the server runs: the one thread that runs the model, and the private upload folder."""
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artnet-model")  # one model, one request at a time
        self.uploads = Path(tempfile.mkdtemp(prefix="artnet-serve-"))  # mode 0700: this user's only
        self.private[str(self.uploads)] = "uploads"

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.uploads, ignore_errors=True)

    def model_card(self) -> dict:
        from ..engine.checkpoint import describe_model

        payload, s = self.predictor.payload, self.settings
        return {
            "model": payload["model"]["name"],
            "description": describe_model(payload),
            "classes": self.predictor.classes,
            "clip": self.predictor.clip.to_dict(),
            "input_shape": list(self.predictor.clip.input_shape),
            "protocol": s.protocol,
            "limits": {"max_upload_mb": s.max_upload_mb, "queue": s.queue, "timeout_s": s.timeout_s},
        }

    # -- a request's work, on the model thread
    def work(self, video: str, name: str, options: dict, deadline: float) -> dict:
        """The answer to a request whose upload is ``video`` (sent as ``name``); errors a client can
        act on are a :class:`RequestError` naming the upload by its name."""
        from ..engine.explain import class_index

        try:
            if options["label"] is not None:  # a class the model does not know: refused before any work
                class_index(self.predictor.classes, options["label"])
            return self._answer(video, name, options, deadline)
        except ArtnetError as failure:  # a video the model cannot take, a block or class it does not have
            raise RequestError(422, _named(failure, video, name, self.private)) from None

    def _answer(self, video: str, name: str, options: dict, deadline: float) -> dict:
        started = time.perf_counter()

        def check_time(_done: int = 0) -> None:
            if time.monotonic() > deadline:
                raise _OutOfTime

        with self.predictor.clip.open_video(video) as reader:
            num_frames, rate = reader.num_frames, reader.frame_rate
        common = dict(num_workers=self.settings.num_workers, view_batch=self.settings.view_batch)
        (prediction,) = self.predictor.predict(
            [video], topk=options["topk"], protocol=self.settings.protocol, progress=check_time, **common
        )
        if prediction.error:
            raise DataError(prediction.error)
        answer: dict = {
            "video": name,
            "num_frames": num_frames,
            "frame_rate": None if rate is None else float(rate),
            "protocol": self.settings.protocol,
            "top": [{"label": label, "score": score} for label, score in zip(prediction.labels, prediction.scores)],
        }
        images: dict[str, str] = {}
        if options["timeline"]:
            check_time()
            timeline = self.predictor.timeline(video, step=options["stride"] or self.settings.stride, progress=check_time, **common)
            timeline.path = name  # what the client knows it by, in the picture too
            answer["timeline"] = {k: v for k, v in timeline.to_dict(options["topk"]).items() if k != "path"}
            if options["images"]:
                from ..render import timeline_plot

                images["timeline"] = _png(timeline_plot, timeline)
        if options["maps"]:
            check_time()
            explanation = self.explainer.explain(video, block=options["block"] or self.settings.block, label=options["label"])
            explanation.video = name
            answer["explanation"] = explanation.to_dict()
            if options["images"]:
                from ..render import contact_sheet

                images["maps"] = _png(contact_sheet, explanation)
        if images:
            answer["images"] = images
        answer["seconds"] = round(time.perf_counter() - started, 3)
        return answer


def create_app(settings: ServeSettings):
    """The application (loads the model now). ``app.state.service`` holds the model and the limits."""
    try:
        from fastapi import FastAPI, Query, Request
        from fastapi.responses import HTMLResponse, JSONResponse
    except ImportError:
        raise ConfigError("artnet serve needs FastAPI: pip install 'artnet[serve]'") from None

    service = Service(settings)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        service.open()
        yield
        service.close()

    app = FastAPI(
        title="artnet", summary="ARTNet video classification: top-k, timeline, appearance / relation maps", lifespan=lifespan
    )
    app.state.service = service
    page = resources.files(__package__).joinpath("index.html").read_text(encoding="utf-8")

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/v1/model")
    async def model() -> dict:
        return service.model_card()

    @app.post("/v1/predict")
    async def predict(
        request: Request,
        topk: int = Query(5, ge=1, le=100),
        timeline: bool = True,
        maps: bool = True,
        images: bool = False,
        stride: int | None = Query(None, ge=1),
        block: str | None = None,
        label: str | None = Query(None, alias="class"),
    ):
        if service.admitted >= settings.queue:
            return error(503, f"busy: {settings.queue} requests are in the queue; try again shortly", {"Retry-After": "1"})
        service.admitted += 1
        deadline = time.monotonic() + settings.timeout_s
        folder = Path(tempfile.mkdtemp(dir=service.uploads))
        handed_over = False  # once the work runs, its end releases the slot and the folder

        def finish(job: asyncio.Future | None = None) -> None:
            service.admitted -= 1
            shutil.rmtree(folder, ignore_errors=True)
            if job is not None and not job.cancelled():
                job.exception()  # retrieved: the work of a request answered 504 ends in _OutOfTime

        try:
            video, name = await asyncio.wait_for(receive_upload(request, folder, settings.max_upload_bytes), settings.timeout_s)
            options = {
                "topk": topk,
                "timeline": timeline,
                "maps": maps,
                "images": images,
                "stride": stride,
                "block": block,
                "label": label,
            }
            job = asyncio.get_running_loop().run_in_executor(service.executor, service.work, video, name, options, deadline)
            job.add_done_callback(finish)
            handed_over = True
            return await asyncio.wait_for(asyncio.shield(job), max(deadline - time.monotonic(), 0))
        except RequestError as failure:
            return error(failure.status, failure.message, failure.headers)
        except (TimeoutError, asyncio.TimeoutError, _OutOfTime):
            return error(504, f"took longer than the limit of {settings.timeout_s:g} s")
        finally:
            if not handed_over:
                finish()

    return app


async def receive_upload(request, folder: Path, limit: int) -> tuple[str, str]:
    """Stream the request's video into ``folder``, counting bytes: its path and the name it was sent
    under. Multipart: the first file field; otherwise the body is the video."""
    import python_multipart
    from python_multipart.multipart import parse_options_header

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the upload is {int(declared) / MEGABYTE:.1f} MB, above the limit of {limit / MEGABYTE:g} MB")
    content_type, parameters = parse_options_header(request.headers.get("content-type"))
    files: list = []
    if content_type == b"multipart/form-data":
        if b"boundary" not in parameters:
            raise RequestError(400, "a multipart upload without a boundary")
        config = {
            "UPLOAD_DIR": str(folder),
            "MAX_MEMORY_FILE_SIZE": 0,
            "UPLOAD_KEEP_EXTENSIONS": True,
            "UPLOAD_DELETE_TMP": False,
        }
        parser = python_multipart.FormParser(
            "multipart/form-data", None, files.append, boundary=parameters[b"boundary"], config=config
        )
        write, name = parser.write, None
    else:
        target = open(folder / "upload", "wb")
        write, name = target.write, request.headers.get("x-filename") or "upload"
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise RequestError(413, f"the upload is larger than the limit of {limit / MEGABYTE:g} MB")
            write(chunk)
        if content_type == b"multipart/form-data":
            parser.finalize()
    except python_multipart.exceptions.FormParserError as failure:
        raise RequestError(400, f"a malformed multipart upload ({failure})") from None
    finally:
        for file in files:
            file.close()
        if content_type != b"multipart/form-data":
            target.close()
    if content_type != b"multipart/form-data":
        if received == 0:
            raise RequestError(400, "no video in the request: send it as a multipart file field, or as the request body")
        return str(folder / "upload"), _safe_name(name)
    uploaded = [f for f in files if f.size > 0]
    if not uploaded:
        raise RequestError(400, "no video in the request: send it as a multipart file field (e.g. curl -F video=@clip.mp4)")
    path = uploaded[0].actual_file_name
    return os.fsdecode(path), _safe_name(os.fsdecode(uploaded[0].file_name or b"upload"))


def _safe_name(name: str) -> str:
    """The base name a client sent, printable and short: it only ever appears in answers."""
    base = os.path.basename(name.replace("\\", "/")) or "upload"
    return "".join(c if c.isprintable() else "?" for c in base)[:120]


def _named(error, path: str, name: str, private: dict[str, str]) -> str:
    """An error message with the private upload path replaced by the name the client sent, and the server's
    other ``private`` paths (the longest first) by what they are to a client."""
    message = str(error).replace(path, name)
    for hidden in sorted(private, key=len, reverse=True):
        message = message.replace(hidden, private[hidden])
    return message


def _png(render, subject) -> str:
    buffer = io.BytesIO()
    render(subject, buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
