"""``artnet convert``: released Caffe weights (``.caffemodel`` + ``.prototxt``) to an artnet checkpoint."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert released Caffe weights into an artnet checkpoint",
        description="Map every blob of a .caffemodel onto an artnet model, checking that none is left over or missing. "
        "The number of classes and the classifier layer (fc8 or fc) come from the prototxt.",
    )
    parser.add_argument(
        "--prototxt", required=True, metavar="FILE", help="the network definition the weights belong to (deploy or train_val)"
    )
    parser.add_argument("--caffemodel", required=True, metavar="FILE", help="the weights")
    parser.add_argument(
        "--model", required=True, metavar="NAME", help="artnet model name: c3d_r18 or artnet_r18_d for the release"
    )
    parser.add_argument("--out", required=True, metavar="CKPT", help="checkpoint file to write (refused if it exists, unless --force)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--classes", metavar="FILE", help="class names, one per line in label order (default: class_000, class_001, ...)"
    )
    parser.add_argument(
        "--rgb", action="store_true", help="swap conv1's input channels so the model takes RGB clips (normalization caffe_rgb)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also run the Caffe reference executor and the converted model on a random clip and compare",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import save_checkpoint
    from ..errors import CheckpointError
    from ..interop.caffemodel import read_caffemodel
    from ..interop.convert import convert_caffemodel, load_prototxt, verify_conversion

    out = output_target(args.out, args.force)  # before the work: a refusal costs nothing
    net = load_prototxt(args.prototxt)
    weights = read_caffemodel(args.caffemodel)
    converted = convert_caffemodel(net, weights, args.model, rgb=args.rgb, classes=args.classes)
    checkpoint = converted.checkpoint
    source = checkpoint["converted_from"]
    print(
        f"{args.caffemodel}: {len(weights.blobs())} layers -> {args.model}, {len(checkpoint['classes'])} classes"
        f" (classifier {source['classifier']}), normalization {checkpoint['clip']['normalization']}"
    )
    if args.verify:
        difference, scale = verify_conversion(net, weights, converted.model, rgb=args.rgb)
        print(f"verify: max |artnet - Caffe reference| = {difference:.2e} (largest reference logit {scale:.3g})")
        if difference > 1e-4 * max(1.0, scale):
            raise CheckpointError(
                f"{args.caffemodel}: the converted model differs from the reference executor by {difference:.2e}"
            )
    save_checkpoint(out, checkpoint)
    print(f"wrote {out}")
    return 0


def output_target(out: str, force: bool):
    """Where the checkpoint goes: a new file, or an existing one with ``--force``; a folder is refused."""
    from pathlib import Path

    from ..errors import OutputError
    from ..outputs import new_file

    if Path(out).is_dir():
        raise OutputError(f"{out}: is a folder; --out names the checkpoint file to write, e.g. {Path(out) / 'model.pt'}")
    return new_file(out, force=force)
