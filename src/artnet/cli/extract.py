"""``artnet extract INPUT... --checkpoint CKPT --out DIR``: features of every video, one ``.npy`` each, and an index."""

from __future__ import annotations

import argparse

from .parsing import add_model_options, add_video_options, integer


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="features of videos (the classifier's input, or any stage), one .npy per video plus an index",
        description="For temporal action localisation, retrieval, linear probes: the pooled features of every video, "
        "per clip or averaged over the video, with the test protocol's clips cut as the checkpoint's model was trained. "
        "Run it again to resume (videos already written are skipped; a folder of other files is refused unless --force); "
        "torchrun --nproc-per-node N -m artnet extract ... shares the videos among processes. Unreadable videos are "
        "reported and skipped.",
    )
    parser.add_argument(
        "inputs", nargs="+", help="video files, frame folders, folders of videos, or list files (<path> [<num_frames>] <label>)"
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file, model folder or Hugging Face Hub repository id")
    parser.add_argument("--out", required=True, metavar="DIR", help="the output folder")
    parser.add_argument(
        "--stage", default=None, help="a module whose output to pool instead of the classifier's input, e.g. layer3"
    )
    parser.add_argument(
        "--per-clip", action="store_true", help="one row per clip, (clips, D), rather than the video's average (D,)"
    )
    parser.add_argument(
        "--protocol", default="25x1", help="the clips (and crops, averaged) per video: 25x1 (default) | 1clip | 10x3 | 25x10"
    )
    parser.add_argument(
        "--root", default=None, help="list files: the folder their paths are relative to (default: the list's folder)"
    )
    add_model_options(parser)
    parser.add_argument("--workers", type=integer(0), default=2, help="decoding processes (DataLoader workers; default 2)")
    parser.add_argument("--view-batch", type=integer(1), default=10, help="views per forward pass (default 10)")
    add_video_options(parser)
    parser.add_argument(
        "--force", action="store_true", help="write into --out even if it holds other files (they are not taken as features)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.extract import INDEX, extract_features

    result = extract_features(
        args.inputs,
        args.checkpoint,
        args.out,
        stage=args.stage,
        per_clip=args.per_clip,
        protocol=args.protocol,
        root=args.root,
        device=args.device,
        acceleration=args.acceleration,
        num_workers=args.workers,
        view_batch=args.view_batch,
        backend=args.backend,
        frame_pattern=args.frame_pattern,
        force=args.force,
    )
    if result.is_main:
        unreadable = f", {len(result.unreadable)} unreadable" if result.unreadable else ""
        processes = len(result.written_by)
        shares = f" ({' + '.join(map(str, result.written_by))} by {processes} processes)" if processes > 1 else ""
        print(
            f"{result.videos} videos: {result.written} written{shares}, {result.skipped} already there{unreadable}"
            f" -> {result.out / INDEX}"
        )
    return 1 if result.unreadable else 0
