"""``artnet predict VIDEO_OR_FOLDER --checkpoint CKPT``: top-k classes of videos."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="top-k class names of videos, as a table, JSON or CSV")
    parser.add_argument("inputs", nargs="+", help="video files, frame folders, or folders of videos")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file, model folder or Hugging Face Hub repository id")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--protocol", default="25x10", help="1clip | 25x10 | 10x3 | 25x1 (default 25x10)")
    parser.add_argument("--format", default="table", choices=("table", "json", "csv"))
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--acceleration",
        default="auto",
        help="auto (default: the fastest path on this machine within 1e-2 of fp32, chosen once and cached) | fp32 | bf16+channels_last ...",
    )
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (DataLoader workers; default 2)")
    parser.add_argument("--backend", default="auto", help="video decoder: auto | pyav | decord | frames (default auto)")
    parser.add_argument("--frame-pattern", default=None, help='frame folders: file names, e.g. "image_{:05d}.jpg"')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.predict import format_predictions, predict

    predictions = predict(
        args.inputs,
        args.checkpoint,
        topk=args.topk,
        protocol=args.protocol,
        device=args.device,
        acceleration=args.acceleration,
        num_workers=args.workers,
        backend=args.backend,
        frame_pattern=args.frame_pattern,
    )
    print(format_predictions(predictions, args.format))
    return 0 if all(p.error is None for p in predictions) else 1
