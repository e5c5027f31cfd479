"""``artnet explain VIDEO --checkpoint C``: Grad-CAM of the appearance and relation branches of a SMART block."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .parsing import add_model_options, add_video_options, integer, number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="where a prediction comes from: appearance and relation maps of a SMART block (PNG, MP4 or JSON)",
        description="Grad-CAM maps of one clip of a video (the centre clip, centre crop, as the 1clip protocol) for a class: "
        "of the appearance and of the relation branch of a SMART block, or of a block's output in a model without SMART. "
        "Writes a contact sheet PNG (input, appearance map, relation map: three rows of frames) and an MP4 of the maps "
        "blended over the frames; --format json prints the raw maps instead.",
    )
    parser.add_argument("video", help="a video file or a frame folder")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument(
        "--block",
        default=None,
        help="conv1, conv2_1 ... conv5_2 (or res2a ... res5b, or a stage: conv5_x; default: the deepest SMART block)",
    )
    parser.add_argument("--class", dest="label", default=None, help="the class to explain (default: the clip's top-1)")
    parser.add_argument("--start", type=integer(0), default=None, help="the clip's first frame (default: the centre clip)")
    parser.add_argument(
        "--format", default="png", choices=("png", "json"), help="png: the PNG and the MP4 (default); json: raw maps on stdout"
    )
    parser.add_argument("--out", default=None, help="path of the outputs without suffix (default: <video name>_explain)")
    parser.add_argument("--force", action="store_true", help="replace the PNG and the MP4 if they exist")
    parser.add_argument(
        "--fps", type=number(positive=True), default=4, help="frame rate of the MP4 (default 4: a 16-frame clip lasts 4 s)"
    )
    add_model_options(parser, acceleration=False)  # maps need gradients: fp32, as defined
    add_video_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.explain import explain
    from ..outputs import new_file

    if args.format == "json":
        if args.out or args.force:
            from ..errors import ConfigError

            raise ConfigError("--out and --force go with --format png (json is printed)")
    else:
        out = Path(args.out) if args.out else Path(f"{Path(args.video).stem}_explain")
        sheet, video = out.with_name(out.name + ".png"), out.with_name(out.name + ".mp4")
        for path in (sheet, video):  # before the work: a refusal costs nothing
            new_file(path, force=args.force, inputs=[args.video])
    explanation = explain(
        args.video,
        args.checkpoint,
        device=args.device,
        block=args.block,
        label=args.label,
        start=args.start,
        backend=args.backend,
        frame_pattern=args.frame_pattern,
    )
    if args.format == "json":
        print(json.dumps(explanation.to_dict()))
        return 0
    from ..render import contact_sheet, explanation_video

    contact_sheet(explanation, sheet)
    explanation_video(explanation, video, fps=args.fps)
    print(f"{explanation.label} ({explanation.score:.4f}) at {explanation.block} ({explanation.module}): {sheet}, {video}")
    return 0
