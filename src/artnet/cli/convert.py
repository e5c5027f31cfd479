"""``artnet convert``: released Caffe weights (``.caffemodel`` + ``.prototxt``) to an artnet checkpoint or model folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert released Caffe weights into an artnet checkpoint or model folder",
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
    parser.add_argument(
        "--out",
        required=True,
        metavar="CKPT_OR_FOLDER",
        help="a checkpoint file to write (name.pt), or a model folder in the Hugging Face layout (a path ending in / "
        "or without a suffix; see artnet export --format hf); refused if it exists, unless --force",
    )
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
    from ..outputs import new_file, new_folder

    folder = is_folder(args.out)
    out = (new_folder if folder else new_file)(args.out, force=args.force)  # before the work: a refusal costs nothing
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
        verification = verify_conversion(net, weights, converted.model, rgb=args.rgb)
        if not verification.passed:
            raise CheckpointError(f"{args.caffemodel}: not converted: {verification.describe()}")
        print(f"verify: {verification.describe()}")
    if folder:
        from ..interop.hub import ModelFolder, save_model_folder

        print(save_model_folder(ModelFolder(checkpoint), out))
    else:
        save_checkpoint(out, checkpoint)
    print(f"wrote {args.out}")
    return 0


def is_folder(out: str) -> bool:
    """``--out`` names a model folder: it ends in a separator, is a folder already, or has no suffix."""
    path = Path(out)
    return out.endswith(("/", os.sep)) or path.is_dir() or not path.suffix
