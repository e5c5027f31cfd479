"""``artnet serve``: a local web demo and the JSON API behind it (FastAPI; the ``serve`` extra).

    GET  /             the page: drop a video, see the top-5, the timeline and the maps
    GET  /v1/model     the model: its classes and input contract (ClipSpec), the server's limits
    POST /v1/predict   a video upload (multipart file field, or the raw bytes) -> top-k, timeline, maps

Safe by default: it listens on localhost; an upload is streamed to a private temporary folder
(mode 0700) with its size counted as it arrives (413 beyond the limit, before the rest is read)
and the folder is deleted once its work is over, whatever happens; anything that does not decode
as a video is a 422 naming why; at most ``queue`` requests are admitted at once (one runs, the
others wait), a request beyond that gets 503 at once, never a pile-up; a request that runs past
``timeout_s`` gets 504 and its work stops at the next window. Errors are JSON: ``{"error": "..."}``.
"""

from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
