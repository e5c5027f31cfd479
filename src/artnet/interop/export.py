"""Exports for serving without artnet: ONNX and TorchScript, each verified against PyTorch on export.

Both take a batch of clips ``(N, C, T, H, W)`` (any N) named ``clips`` and return ``(N, classes)``
logits named ``logits``: one forward pass per clip, as :class:`~artnet.models.VideoResNet`; averaging
the views of a video (the test protocols, the TSN consensus) is the caller's. Each file carries what
a user needs to feed it and read it: the input contract (:class:`~artnet.data.ClipSpec`), the class
names and the model (:func:`read_metadata`):

* ONNX: in the model's ``metadata_props`` (``artnet.clip``, ``artnet.classes``, ``artnet.model``:
  JSON); exported by ``torch.onnx.export`` (the dynamo exporter) with a dynamic batch dimension at
  a named opset; checked with onnxruntime. Needs the ``onnx`` extra.
* TorchScript: traced (``torch.jit.trace``: shapes are read at run time, so any batch size runs),
  the same JSON in the archive's ``extra/artnet.json``; checked with ``torch.jit.load``.

Verification runs the exported file and the PyTorch model on random clips of the model's input
contract (random pixels, normalised as real ones are) at two batch sizes and requires the largest
logit difference to be within :func:`logit_bound`: :data:`TOLERANCE` for logits up to
:data:`SANE_LOGIT`, a fixed fraction of the largest logit beyond (:func:`compare_logits`, which
``artnet convert --verify`` shares). Where the model's logits on full-range random pixels exceed
:data:`SANE_LOGIT` (a barely trained network), low-contrast clips are tried first. A file that
fails is not written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.clip import ClipSpec
from ..errors import CheckpointError
from ..outputs import atomic_path

FORMATS = ("hf", "onnx", "torchscript")
ONNX_OPSET = 18
TOLERANCE = 1e-4  # max |difference| of fp32 logits up to SANE_LOGIT
# Beyond it the bound is TOLERANCE / SANE_LOGIT of the largest logit: fp32 keeps about 7 significant digits,
# and the rounding of a deep network's sums grows with the size of its activations.
SANE_LOGIT = 10.0
VERIFY_BATCHES = (1, 2)  # the example is traced at batch 2: batch 1 checks the batch dimension is free
# Pixel contrasts of the verification clips, tried in order until the logits are sane: full-range random
# pixels, then noise about mid-grey (a barely trained network's logits on random pixels can reach 1e4 and more).
VERIFY_CONTRASTS = (128, 8)
INPUT_NAME, OUTPUT_NAME = "clips", "logits"
TORCHSCRIPT_METADATA = "artnet.json"


def logit_bound(largest_logit: float) -> float:
    """The largest logit difference allowed between two fp32 computations of one model (see :data:`SANE_LOGIT`)."""
    return TOLERANCE * max(1.0, largest_logit / SANE_LOGIT)


@dataclass(frozen=True)
class Verification:
    """How close a model's logits (``subject``) came to a reference's, on ``clips``."""

    subject: str  # "exported", "artnet"
    reference: str  # "PyTorch", "Caffe reference"
    max_abs_difference: float
    largest_logit: float  # of the reference
    clips: str  # what they ran on, in words
    runtime: str = ""  # what ran the subject, where it is not PyTorch

    @property
    def bound(self) -> float:
        return logit_bound(self.largest_logit)

    @property
    def passed(self) -> bool:
        return self.max_abs_difference <= self.bound  # NaN fails

    def describe(self) -> str:
        verdict = "within" if self.passed else "beyond"
        if self.largest_logit <= SANE_LOGIT:
            bound = f"{verdict} {TOLERANCE:g} (fp32; largest |logit| {self.largest_logit:.3g})"
        else:
            bound = (
                f"{verdict} {self.bound:.1e} = {TOLERANCE / SANE_LOGIT:g} x the largest |logit| {self.largest_logit:.3g}"
                f" (above {SANE_LOGIT:g}, fp32's rounding grows with the logits)"
            )
        return f"max |{self.subject} - {self.reference}| = {self.max_abs_difference:.1e}, {bound}, on {self.clips}"


def compare_logits(
    expected: list[np.ndarray], got: list[np.ndarray], subject: str, reference: str, clips: str, runtime: str = ""
) -> Verification:
    """``got`` (the subject's logits) against ``expected`` (the reference's), batch by batch; a non-finite
    difference counts as infinite."""
    difference, largest = 0.0, 0.0
    for want, have in zip(expected, got, strict=True):
        gap = float(np.abs(np.asarray(have, dtype=np.float64) - want).max())
        difference = max(difference, gap if np.isfinite(gap) else float("inf"))
        largest = max(largest, float(np.abs(want).max()))
    return Verification(subject, reference, difference, largest, clips, runtime)


def metadata(model: nn.Module, classes: list[str], clip: ClipSpec) -> dict[str, Any]:
    """What an exported file says about itself."""
    return {
        "artnet_version": __version__,
        "model": {"name": model.variant, "options": dict(model.options)},
        "classes": list(classes),
        "clip": clip.to_dict(),
        "input": {"name": INPUT_NAME, "shape": ["batch", *clip.input_shape], "layout": "N, C, T, H, W"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(classes)]},
    }


def export_model(
    model: nn.Module, classes: list[str], clip: ClipSpec, fmt: str, out: str | Path, *, opset: int = ONNX_OPSET
) -> Verification:
    """Write ``model`` (put in fp32 eval mode) as ``fmt`` (``onnx`` or ``torchscript``) to ``out``, verified
    (the file is only written when it passes); returns the verification."""
    if fmt not in ("onnx", "torchscript"):
        raise CheckpointError(f"unknown export format {fmt!r}; choose from onnx, torchscript (hf: artnet.interop.hub)")
    model = model.float().eval()
    info = metadata(model, classes, clip)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as temporary:  # renamed to out once verified; removed if it fails
        if fmt == "onnx":
            _write_onnx(model, clip, info, temporary, opset)
            run = onnx_runner(temporary)
            runtime = f"onnxruntime {_version('onnxruntime')} (opset {opset})"
        else:
            _write_torchscript(model, clip, info, temporary)
            run = torchscript_runner(temporary)
            runtime = f"torch.jit.load (torch {torch.__version__})"
        verification = verify(model, run, clip, runtime)
        if not verification.passed:
            raise CheckpointError(
                f"{out}: not written: the exported model differs from PyTorch ({runtime}: {verification.describe()})"
            )
    return verification


def verify(
    model: nn.Module, run: Callable[[torch.Tensor], np.ndarray], clip: ClipSpec, runtime: str, seed: int = 0
) -> Verification:
    """Run ``run`` (the exported model) and ``model`` on random clips of each of :data:`VERIFY_BATCHES`,
    at the first of :data:`VERIFY_CONTRASTS` on which the model's logits are sane (else the one giving the
    smallest logits)."""
    from ..engine.auto_acceleration import probe_clips

    contrast = _verification_contrast(model, clip, seed)
    expected, got = [], []
    for batch in VERIFY_BATCHES:
        clips = probe_clips(clip, batch=batch, seed=seed + batch, contrast=contrast)
        expected.append(_logits(model, clips))
        if not np.isfinite(expected[-1]).all():
            raise CheckpointError("cannot verify the export: the PyTorch model's own logits on random clips are not finite")
        got.append(run(clips))
        if got[-1].shape != expected[-1].shape:
            raise CheckpointError(
                f"the exported model returned logits of shape {got[-1].shape} for {batch} clips, expected {expected[-1].shape}"
            )
    kind = "random" if contrast == VERIFY_CONTRASTS[0] else f"low-contrast (mid-grey +-{contrast}) random"
    clips = f"batches of {' and '.join(map(str, VERIFY_BATCHES))} {kind} clips"
    return compare_logits(expected, got, "exported", "PyTorch", clips, runtime)


def _verification_contrast(model: nn.Module, clip: ClipSpec, seed: int) -> int:
    from ..engine.auto_acceleration import probe_clips

    largest = {}
    for contrast in VERIFY_CONTRASTS:
        logits = _logits(model, probe_clips(clip, batch=VERIFY_BATCHES[0], seed=seed + VERIFY_BATCHES[0], contrast=contrast))
        largest[contrast] = float(np.abs(logits).max()) if np.isfinite(logits).all() else float("inf")
        if largest[contrast] <= SANE_LOGIT:
            return contrast
    return min(largest, key=largest.get)


def _logits(model: nn.Module, clips: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(clips).numpy()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata an exported file carries (see :func:`metadata`), for ``.onnx`` and TorchScript files."""
    path = Path(path)
    if path.suffix == ".onnx":
        onnx = _require("onnx")
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if "artnet.clip" not in props:
            raise CheckpointError(f"{path}: an ONNX model without artnet's metadata")
        return {key.removeprefix("artnet."): json.loads(value) for key, value in props.items() if key.startswith("artnet.")}
    files = {TORCHSCRIPT_METADATA: ""}
    with _quiet():
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[TORCHSCRIPT_METADATA]:
        raise CheckpointError(f"{path}: a TorchScript archive without artnet's metadata")
    return json.loads(files[TORCHSCRIPT_METADATA])


# ----------------------------------------------------------------------------------------------


def _write_onnx(model: nn.Module, clip: ClipSpec, info: dict[str, Any], path: Path, opset: int) -> None:
    _require("onnxscript")  # the dynamo exporter's
    example = torch.zeros(2, *clip.input_shape)
    batch = torch.export.Dim("batch")
    with _quiet(), torch.no_grad():  # no grad: SquarePool runs as plain tensor ops
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    written = program.model.opset_imports.get("", opset)
    if written != opset:  # the exporter falls back to its own lowest opset where it cannot convert down
        raise CheckpointError(f"ONNX opset {opset}: torch {torch.__version__}'s exporter could only write opset {written}; ask for {written} or above")
    for key, value in info.items():
        program.model.metadata_props[f"artnet.{key}"] = json.dumps(value)
    program.model.doc_string = f"artnet {info['model']['name']}: clips (batch, {', '.join(map(str, clip.input_shape))}) -> logits"
    program.save(str(path), external_data=False)


def onnx_runner(path: str | Path) -> Callable[[torch.Tensor], np.ndarray]:
    """An exported ONNX model as a function of clips, run by onnxruntime on the CPU with torch's thread count."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda clips: session.run([OUTPUT_NAME], {INPUT_NAME: clips.numpy()})[0]


def _write_torchscript(model: nn.Module, clip: ClipSpec, info: dict[str, Any], path: Path) -> None:
    example = torch.zeros(2, *clip.input_shape)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
        with open(path, "wb") as file:  # by name, torch's writer aborts the process when the disk is full
            torch.jit.save(traced, file, _extra_files={TORCHSCRIPT_METADATA: json.dumps(info)})


def torchscript_runner(path: str | Path) -> Callable[[torch.Tensor], np.ndarray]:
    """An exported TorchScript model as a function of clips."""
    with _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(clips: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return loaded(clips).numpy()

    return run


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' chatter: TorchScript's deprecation and tracer warnings (the traced code reads
    shapes, as it should), onnxscript's notes on constants it does not fold."""
    logger = logging.getLogger("onnxscript")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            yield
    finally:
        logger.setLevel(level)


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CheckpointError(f"ONNX export needs {module}: pip install 'artnet[onnx]'") from None


def _version(module: str) -> str:
    return getattr(_require(module), "__version__", "?")
