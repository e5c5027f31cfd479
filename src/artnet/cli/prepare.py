"""``artnet prepare``: re-encode videos, extract frames or optical flow for fast training, and write lists with frame counts."""

from __future__ import annotations

import argparse
import os

from ..data.annotations import HMDB51_CLASS_ORDERS, KINDS
from ..data.flow import FLOW_BOUND, FLOW_METHODS
from .parsing import integer, number, parse_dims, parse_shard


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="re-encode videos / extract JPEG frames / optical flow at the working size; write lists with frame counts",
        description="Convert every video under SRC into DST (same layout; resumable), then write annotation lists "
        "with frame counts into DST/lists. Run shards (--shard i/n) on several machines, then once without "
        "--shard to write the lists.",
    )
    parser.add_argument("src", help="folder of source videos (any depth)")
    parser.add_argument("dst", help="output folder (prepared videos / frame folders, and lists/)")
    parser.add_argument(
        "--to",
        choices=("video", "frames", "flow", "none"),
        default="video",
        help="video: H.264 short-GOP MP4s (default); frames: JPEG folders; flow: optical flow folders (x_00001.jpg, "
        "y_00001.jpg; give them their own DST); none: only lists of SRC",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", default="128x170", help="frame size HxW, regardless of aspect ratio (default 128x170, upstream)")
    size.add_argument("--short-side", type=integer(1), help="scale the short side to this, keeping the aspect ratio")
    parser.add_argument("--gop", type=integer(1), default=16, help="keyframe interval of re-encoded videos (default 16)")
    parser.add_argument(
        "--crf", type=integer(0, 51), default=18, help="x264 quality of re-encoded videos, 0-51, lower is better (default 18)"
    )
    parser.add_argument(
        "--quality", type=integer(1, 100), default=90, help="JPEG quality of extracted frames and flow, 1-100 (default 90)"
    )
    parser.add_argument(
        "--flow", choices=FLOW_METHODS, default=FLOW_METHODS[0], help="flow method: tvl1 (upstream's, default) or farneback (much faster, less accurate)"
    )
    parser.add_argument(
        "--flow-bound",
        type=number(positive=True),
        default=FLOW_BOUND,
        help=f"flow is clipped to +-this many pixels, then mapped to 0-255 (default {FLOW_BOUND:g}, upstream)",
    )
    parser.add_argument("--jobs", type=integer(1), default=os.cpu_count() or 1, help="parallel processes (default: all cores)")
    parser.add_argument("--shard", help="i/n: convert only every n-th video from the i-th (0-based); no lists")
    lists = parser.add_argument_group("lists")
    lists.add_argument("--lists", choices=KINDS, help="which annotation lists to write: the dataset's format")
    lists.add_argument(
        "--annotations",
        "--splits-dir",
        "--csv",
        nargs="+",
        default=[],
        metavar="PATH",
        help="what describes the dataset: the UCF101 / HMDB51 split folder, Kinetics CSV files, or list files",
    )
    lists.add_argument("--split", type=integer(1), nargs="+", default=[1, 2, 3], help="UCF101 / HMDB51 splits (default 1 2 3)")
    lists.add_argument("--class-order", choices=HMDB51_CLASS_ORDERS, default="upstream", help="HMDB51 class indices")
    lists.add_argument("--max-missing-ratio", type=number(0, 1), default=0.0, help="allowed fraction of listed videos not found")
    parser.add_argument(
        "--force", action="store_true", help="write into DST even if it holds other files or an output of other options"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.annotations import dataset_lists
    from ..data.flow import FlowOptions
    from ..data.prepare import EncodeOptions, claim_output, prepare_videos, write_lists

    shard = parse_shard(args.shard) if args.shard else None
    size = args.short_side if args.short_side else parse_dims(args.size, "--size", ("H", "W"), "128x170")
    failed = []
    known = {}
    root = args.src
    if args.to == "none":
        claim_output(args.dst, {"to": "none"}, force=args.force)
    else:
        flow = FlowOptions(method=args.flow, bound=args.flow_bound)
        options = EncodeOptions(to=args.to, size=size, gop=args.gop, crf=args.crf, quality=args.quality, flow=flow)
        report = prepare_videos(args.src, args.dst, options, jobs=args.jobs, shard=shard, progress=not args.quiet, force=args.force)
        failed = report.failed
        known = report.frames
        root = args.dst
        print(f"{args.to}: {report.converted} converted, {report.skipped} already done, {len(report.failed)} failed -> {args.dst}")
    if args.lists:
        if shard is not None:
            print("lists: not written by a shard; run once more without --shard when every shard is done")
        else:
            annotations = dataset_lists(
                args.lists,
                root,
                args.annotations,
                splits=args.split,
                class_order=args.class_order,
                max_missing_ratio=args.max_missing_ratio,
            )
            written = write_lists(annotations, os.path.join(args.dst, "lists"), root, jobs=args.jobs, progress=not args.quiet, known_frames=known)
            for path, (_, a) in zip(written, annotations):
                print(f"list: {path} ({sum(1 for _ in open(path))} videos, {len(a.classes)} classes)")
    for source, reason in failed[:10]:
        print(f"failed: {reason}")
    if len(failed) > 10:
        print(f"failed: ... and {len(failed) - 10} more")
    return 1 if failed else 0
