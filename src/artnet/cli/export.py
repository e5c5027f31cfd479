"""``artnet export CKPT --format hf|onnx|torchscript --out PATH``: a model to share or to serve, verified."""

from __future__ import annotations

import argparse

from .parsing import integer


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint as a model folder (Hugging Face layout), ONNX or TorchScript",
        description="hf: a model folder (config.json with the model, class names and input contract; model.safetensors; "
        "a model card README.md), which artnet and create_model(pretrained=...) read without pickle. onnx / torchscript: "
        "(batch, C, T, H, W) clips -> logits, any batch size, the input contract and class names in the file's metadata; "
        "each export is run against PyTorch on random clips and only written when the logits agree.",
    )
    parser.add_argument("checkpoint", help="a checkpoint file or model folder")
    parser.add_argument("--format", required=True, choices=("hf", "onnx", "torchscript"))
    parser.add_argument("--out", required=True, metavar="PATH", help="the folder (hf) or file (onnx, torchscript) to write")
    parser.add_argument("--opset", type=integer(1), default=None, help="onnx: the ONNX opset (default 18)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=[],
        metavar="FILE",
        help="hf: metrics.json files of artnet test to quote in the model card "
        "(reports beside the checkpoint that name it are found by themselves)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.opset is not None and args.format != "onnx":
        raise ConfigError(f"--opset is an option of --format onnx, not {args.format}")
    if args.metrics and args.format != "hf":
        raise ConfigError(f"--metrics is an option of --format hf (the model card), not {args.format}")
    from ..outputs import new_file, new_folder

    (new_folder if args.format == "hf" else new_file)(args.out, force=args.force)  # before the work: a refusal costs nothing
    if args.format == "hf":
        from ..interop.hub import ModelFolder, save_model_folder

        print(save_model_folder(ModelFolder.from_checkpoint(args.checkpoint, metrics=args.metrics), args.out))
    else:
        from ..engine.checkpoint import clip_spec, load_checkpoint, model_from_checkpoint
        from ..interop.export import ONNX_OPSET, export_model

        payload = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(payload, source=args.checkpoint)
        verification = export_model(
            model, payload["classes"], clip_spec(payload, args.checkpoint), args.format, args.out, opset=args.opset or ONNX_OPSET
        )
        print(f"verified with {verification.runtime}: {verification.describe()}")
    print(f"wrote {args.out}")
    return 0
