"""``artnet serve --checkpoint C``: a local web page and JSON API for a model."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from .parsing import add_model_options, integer, number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a local web demo and HTTP API: drop a video, see the top-5, the timeline and the maps",
        description="Serves GET / (the page), GET /v1/model (classes, input contract) and POST /v1/predict (a video upload). "
        "Listens on localhost unless told otherwise; uploads are size-limited, kept in a private temporary folder and deleted "
        "after the answer; a bounded queue answers 503 beyond it; each request has a time limit.",
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=integer(1, 65535), default=8080)
    parser.add_argument("--max-upload-mb", type=number(positive=True), default=100.0, help="larger uploads get 413 (default 100)")
    parser.add_argument(
        "--queue", type=integer(1), default=4, help="requests admitted at once, running or waiting; more get 503 (default 4)"
    )
    parser.add_argument(
        "--timeout", type=number(positive=True), default=120.0,
        help="seconds a request may take, upload included; then 504 (default 120)"
    )
    parser.add_argument(
        "--protocol", default="25x1", help="clips x crops of the top-k: 1clip | 25x1 | 10x3 | 25x10 (default 25x1)"
    )
    add_model_options(parser)
    parser.add_argument(
        "--workers", type=integer(0), default=0, help="decoding processes per request (default 0: in the server process)"
    )
    parser.add_argument(
        "--stride", type=integer(1), default=None, help="frames between the timeline's windows (default: a clip span)"
    )
    parser.add_argument("--block", default=None, help="block of the maps: conv1, conv2_1 ... (default: the deepest SMART block)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..serve import ServeSettings, create_app

    try:
        import uvicorn
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("artnet serve needs uvicorn: pip install 'artnet[serve]'") from None
    settings = ServeSettings(
        args.checkpoint,
        max_upload_mb=args.max_upload_mb,
        queue=args.queue,
        timeout_s=args.timeout,
        protocol=args.protocol,
        device=args.device,
        acceleration=args.acceleration,
        num_workers=args.workers,
        stride=args.stride,
        block=args.block,
    )
    app = create_app(settings)
    if not _loopback(args.host):
        print(f"artnet serve: listening on {args.host}: anyone who can reach this machine can use the model", file=sys.stderr)
    print(f"artnet serve: http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
