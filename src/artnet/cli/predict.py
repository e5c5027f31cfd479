"""``artnet predict VIDEO_OR_FOLDER --checkpoint CKPT``: top-k classes of videos; ``--timeline``: over the course of one video."""

from __future__ import annotations

import argparse
import os

from .parsing import add_model_options, add_video_options, integer


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="top-k class names of videos (or, --timeline, of windows over one video)")
    parser.add_argument("inputs", nargs="+", help="video files, frame folders, or folders of videos")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file, model folder or Hugging Face Hub repository id")
    parser.add_argument("--topk", type=integer(1), default=5, help="classes per video (default 5)")
    parser.add_argument("--protocol", default="25x10", help="1clip | 25x10 | 10x3 | 25x1 (default 25x10)")
    parser.add_argument("--format", default="table", choices=("table", "json", "csv"))
    add_model_options(parser)
    parser.add_argument("--workers", type=integer(0), default=2, help="decoding processes (DataLoader workers; default 2)")
    parser.add_argument("--view-batch", type=integer(1), default=10, help="clips per forward pass (default 10)")
    add_video_options(parser)
    timeline = parser.add_argument_group(
        "timeline", "one video, however long: a window (a clip, centre crop) every --stride frames"
    )
    timeline.add_argument(
        "--timeline", action="store_true", help="the top-k of every window, not of the video (--protocol is ignored)"
    )
    timeline.add_argument(
        "--stride",
        type=integer(1),
        default=None,
        help="frames from one window to the next (default: a clip span, windows side by side)",
    )
    timeline.add_argument(
        "--plot", default=None, metavar="PNG", help="write the class probabilities over time, naming those that win a window"
    )
    timeline.add_argument(
        "--annotate", default=None, metavar="MP4", help="write the video with the current top label and score on its frames"
    )
    timeline.add_argument("--force", action="store_true", help="replace the --plot and --annotate files if they exist")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.predict import Predictor, format_predictions, format_timeline
    from ..errors import ConfigError
    from ..outputs import new_file

    options = dict(num_workers=args.workers, view_batch=args.view_batch, backend=args.backend, frame_pattern=args.frame_pattern)
    if not args.timeline:
        if args.stride or args.plot or args.annotate or args.force:
            raise ConfigError("--stride, --plot, --annotate and --force go with --timeline")
        predictor = Predictor(args.checkpoint, device=args.device, acceleration=args.acceleration, view_batch=args.view_batch)
        predictions = predictor.predict(args.inputs, topk=args.topk, protocol=args.protocol, **options)
        print(format_predictions(predictions, args.format))
        return 0 if all(p.error is None for p in predictions) else 1
    if len(args.inputs) != 1:
        raise ConfigError(f"--timeline takes one video, got {len(args.inputs)}")
    outputs = [path for path in (args.plot, args.annotate) if path]
    if len(outputs) == 2 and os.path.abspath(args.plot) == os.path.abspath(args.annotate):
        raise ConfigError(f"--plot and --annotate name the same file, {args.plot}")
    for path in outputs:  # before the work: a refusal costs nothing
        new_file(path, force=args.force, inputs=args.inputs)
    predictor = Predictor(args.checkpoint, device=args.device, acceleration=args.acceleration, view_batch=args.view_batch)
    timeline = predictor.timeline(args.inputs[0], step=args.stride, **options)
    print(format_timeline(timeline, args.format, args.topk))
    if args.plot or args.annotate:
        from ..render import annotate_video, timeline_plot

        if args.plot:
            timeline_plot(timeline, args.plot)
        if args.annotate:
            annotate_video(timeline, args.annotate, backend=args.backend, frame_pattern=args.frame_pattern)
    return 0
