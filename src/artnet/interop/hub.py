"""Model folders in the Hugging Face layout, and the Hugging Face Hub.

A model folder is what a user needs to run a model, and nothing of how it was trained::

    config.json         the variant, its options, the class names, the input contract (ClipSpec),
                        where the weights come from, the figures they were measured at
    model.safetensors   the weights
    README.md           a model card generated from the above

``artnet export CKPT --format hf --out FOLDER`` and ``artnet convert ... --out FOLDER/`` write one
(:meth:`ModelFolder.save_pretrained`, huggingface_hub's :class:`~huggingface_hub.ModelHubMixin`),
``push_to_hub`` uploads it, and every reader of checkpoints reads it, with no pickle
(:func:`artnet.engine.checkpoint.read_model_folder`)::

    folder = ModelFolder.from_checkpoint("runs/ucf101_artnet_r18_d_split1/final.pt")
    folder.save_pretrained("artnet-ucf101")
    folder.push_to_hub("me/artnet-ucf101")                  # needs a token (hf auth login) and the network
    model = artnet.create_model("artnet_r18_d", pretrained="artnet-ucf101")        # or "me/artnet-ucf101"

Needs the ``hub`` extra (``pip install 'artnet[hub]'``: huggingface_hub, safetensors).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, OutputError

try:
    from huggingface_hub import ModelCard, ModelHubMixin, snapshot_download
    from safetensors.torch import save
except ImportError:  # an optional extra
    raise CheckpointError("model folders and the Hub need huggingface_hub and safetensors: pip install 'artnet[hub]'") from None

import torch
from torch import nn

from .. import __version__
from ..data.clip import ClipSpec
from ..engine.checkpoint import (
    FOLDER_CONFIG,
    FOLDER_WEIGHTS,
    folder_config,
    load_checkpoint,
    model_from_checkpoint,
    model_payload,
    read_model_folder,
)

PAPER_URL = "https://arxiv.org/abs/1711.09125"
CITATION = """@inproceedings{wang2018artnet,
  title     = {Appearance-and-Relation Networks for Video Classification},
  author    = {Wang, Limin and Li, Wei and Li, Wen and Van Gool, Luc},
  booktitle = {CVPR},
  year      = {2018}
}"""

MODEL_CARD = """---
{{ card_data }}
---

# {{ title }}

{{ description }}

## Use

```bash
pip install 'artnet[hub]'
artnet predict video.mp4 --checkpoint {{ location }}
```

```python
import artnet

model = artnet.create_model("{{ variant }}", pretrained="{{ location }}").eval()
clip = model.pretrained_cfg.clip    # how to cut and normalise the clips (artnet.data.ClipSpec)
```

## Input

{{ input }}

## Classes

{{ classes }}

## Figures

{{ figures }}

## Provenance

{{ provenance }}

## Citation

```bibtex
{{ citation }}
```
"""


class ModelFolder(
    ModelHubMixin,
    library_name="artnet",
    pipeline_tag="video-classification",
    tags=["video-classification", "action-recognition", "artnet"],
    paper_url=PAPER_URL,
    model_card_template=MODEL_CARD,
):
    """A model with its class names and input contract: the model part of a checkpoint
    (:func:`~artnet.engine.checkpoint.model_payload`), saved as a Hugging Face model folder.

    ``save_pretrained(folder)`` / ``push_to_hub(repo_id)`` / ``ModelFolder.from_pretrained(folder or repo_id)``
    come from :class:`~huggingface_hub.ModelHubMixin`; :meth:`model` rebuilds the network.
    """

    def __init__(self, payload: dict[str, Any]):
        self.payload = payload

    @classmethod
    def from_checkpoint(cls, path: str | Path, metrics: list[str | Path] = ()) -> ModelFolder:
        """A checkpoint file (or model folder), with the figures it was measured at: the reports of
        ``artnet test`` beside it that name it, the validation a ``best.pt`` records, and ``metrics``
        (``metrics.json`` files of ``artnet test``)."""
        path = Path(path)
        payload = load_checkpoint(path)
        payload["evaluations"] = list(payload.get("evaluations", [])) + evaluations_of(path, payload, metrics)
        return cls(payload)

    @classmethod
    def from_model(
        cls, model: nn.Module, classes: list[str] | None = None, clip: ClipSpec | None = None, **extra: Any
    ) -> ModelFolder:
        """A model made by :func:`artnet.create_model` (class names and clip default to its ``pretrained_cfg``'s)."""
        cfg = model.pretrained_cfg
        classes = list(classes if classes is not None else cfg.classes or [f"class_{i:03d}" for i in range(cfg.num_classes)])
        return cls(model_payload(model, classes, clip or cfg.clip, **extra))

    @property
    def config(self) -> dict[str, Any]:
        """What ``config.json`` holds."""
        return folder_config({**self.payload, **provenance(self.payload)})

    def model(self) -> nn.Module:
        return model_from_checkpoint(self.payload, source="model folder")

    def save_pretrained(
        self, save_directory: str | Path, *, model_card_kwargs: dict[str, Any] | None = None, **options: Any
    ) -> str | None:
        """Write ``model.safetensors``, ``config.json`` and the model card ``README.md`` (regenerated), each
        whole: written into a temporary folder inside ``save_directory``, then renamed into place (the weights
        first), so a failed write leaves the files that were there as they were."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        push, repo_id = options.pop("push_to_hub", False), options.pop("repo_id", None)
        card = {"location": str(folder), **(model_card_kwargs or {})}
        replaced = []
        try:
            with tempfile.TemporaryDirectory(prefix=".artnet-save.", dir=folder) as staging:
                super().save_pretrained(staging, model_card_kwargs=card, **options)
                names = sorted(os.listdir(staging), key=lambda name: (name != FOLDER_WEIGHTS, name != FOLDER_CONFIG, name))
                for name in names:
                    os.replace(os.path.join(staging, name), folder / name)
                    replaced.append(name)
        except OSError as error:
            kept = f"only {', '.join(replaced)} replaced" if replaced else "the files that were there are unchanged"
            raise OutputError(f"{folder}: not written ({error.strerror or error}); {kept}") from None
        if push:
            return self.push_to_hub(repo_id or folder.name, model_card_kwargs=model_card_kwargs, **options)
        return None

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict[str, Any] | None = None, **options: Any) -> str:
        """Upload the folder to a Hub repository (created if need be; see :meth:`ModelHubMixin.push_to_hub`)."""
        return super().push_to_hub(repo_id, model_card_kwargs={"location": repo_id, **(model_card_kwargs or {})}, **options)

    def _save_pretrained(self, save_directory: Path) -> None:
        tensors = {key: value.detach().cpu().contiguous() for key, value in self.payload["state_dict"].items()}
        # as bytes, written by Python: a failed write is the system's OSError, not safetensors' own error
        (save_directory / FOLDER_WEIGHTS).write_bytes(save(tensors, metadata={"format": "pt", "artnet_version": __version__}))
        (save_directory / FOLDER_CONFIG).write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def _from_pretrained(
        cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token, **unused
    ) -> ModelFolder:
        folder = (
            model_id
            if Path(model_id).is_dir()
            else download(model_id, revision, cache_dir, force_download, local_files_only, token)
        )
        return cls(read_model_folder(folder))

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        return super().generate_model_card(*args, **{**card_sections(self.config), **kwargs})


def download(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A Hub repository's model folder in the local Hugging Face cache (offline once there, with ``HF_HUB_OFFLINE=1``)."""
    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
                allow_patterns=[FOLDER_CONFIG, FOLDER_WEIGHTS, "README.md"],
                library_name="artnet",
                library_version=__version__,
            )
        )
    except Exception as error:  # noqa: BLE001 - offline, no such repository, no access: one line
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(
            f"{repo_id}: no such checkpoint file or model folder, nor a Hugging Face Hub repository to download ({first_line})"
        ) from None


def save_model_folder(folder: ModelFolder, out: str | Path) -> str:
    """Write ``folder`` to ``out`` and read it back as every reader will; returns what was checked."""
    folder.save_pretrained(out)
    written = read_model_folder(out)
    expected = folder.payload["state_dict"]
    if written["state_dict"].keys() != expected.keys() or not all(
        torch.equal(written["state_dict"][k], expected[k].cpu()) for k in expected
    ):
        raise CheckpointError(f"{out}: the weights read back from {FOLDER_WEIGHTS} differ from the checkpoint's")
    model_from_checkpoint(written, source=str(out))
    return (
        f"verified: {len(expected)} tensors read back equal from {FOLDER_WEIGHTS} (no pickle),"
        f" the model rebuilt from {FOLDER_CONFIG}"
    )


# ----------------------------------------------------------------------------------------------
# What the folder says about the weights


def evaluations_of(path: Path, payload: dict[str, Any], metrics: list[str | Path] = ()) -> list[dict[str, Any]]:
    """The figures a checkpoint was measured at: its in-training validation, ``artnet test`` reports
    beside it that name it (``test_*/metrics.json``), and the given ``metrics.json`` files, which must
    name it too (:func:`measures`)."""
    found = []
    if "metrics" in payload:  # best.pt: the validation that made it the best
        protocol = payload.get("config", {}).get("train", {}).get("eval_protocol", "")
        found.append(
            _evaluation(payload["metrics"], protocol, f"validation while training, iteration {payload.get('iteration', '?')}")
        )
    reports = sorted(path.parent.glob("test_*/metrics.json")) + sorted(path.parent.glob("test_*/split*/metrics.json"))
    for report in reports:
        values = _read_metrics(report)
        if measures(values, path, payload):  # beside it, but maybe of best.pt or another checkpoint there
            found.append(_evaluation(values, values.get("protocol", ""), f"artnet test ({report.relative_to(path.parent)})"))
    for report in map(Path, metrics):
        values = _read_metrics(report)
        if not measures(values, path, payload):
            named = values.get("checkpoint")
            what = "names no checkpoint"
            if named:
                what = f"measures {named}" + ("" if Path(named).exists() else " (not found from here)")
            raise CheckpointError(f"{report}: {what}, not the weights of {path}; give the reports of artnet test on them")
        found.append(_evaluation(values, values.get("protocol", ""), f"artnet test ({report.name})"))
    return found


def measures(report: dict[str, Any], path: Path, payload: dict[str, Any]) -> bool:
    """Whether the ``checkpoint`` a metrics.json names (as ``artnet test`` was given it, from where it ran) holds
    the weights of ``payload`` (read from ``path``): the same file or folder, or a copy with equal tensors."""
    named = Path(report.get("checkpoint") or "")
    if not report.get("checkpoint") or not named.exists():
        return False
    if named.resolve() == path.resolve():
        return True
    try:
        other = load_checkpoint(named)["state_dict"]
    except CheckpointError:
        return False
    own = payload["state_dict"]
    return other.keys() == own.keys() and all(torch.equal(other[key].cpu(), own[key].cpu()) for key in own)


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable metrics.json ({error})") from None
    if not isinstance(values, dict) or "top1" not in values:
        raise CheckpointError(f"{path}: not the metrics.json of artnet test (no top1)")
    return values


def _evaluation(values: dict[str, Any], protocol: str, source: str) -> dict[str, Any]:
    keys = ("top1", "top5", "mean_class_accuracy", "videos", "missing")
    return {"protocol": protocol, **{key: values[key] for key in keys if key in values}, "source": source}


def provenance(payload: dict[str, Any]) -> dict[str, Any]:
    """``trained`` (recipe and iterations, for weights artnet trained) and ``paper`` (what the paper reports
    for that recipe, or for the released Caffe weights they were converted from), where known."""
    found: dict[str, Any] = {}
    config = payload.get("config")
    if config:
        found["trained"] = {"run": config.get("name"), "model": payload["model"]["name"], "iteration": payload.get("iteration")}
        if config.get("paper", {}).get("table"):
            found["paper"] = {"recipe": config.get("name"), **config["paper"]}
    caffemodel = payload.get("converted_from", {}).get("caffemodel")
    if caffemodel and "paper" not in found:
        from ..engine.config import list_recipes, load_config

        for name in list_recipes():
            paper = load_config(name).paper
            if paper.released == caffemodel:
                found["paper"] = {"recipe": name, **vars(paper)}
    return found


def card_sections(config: dict[str, Any]) -> dict[str, str]:
    """The model card's text, from what ``config.json`` holds."""
    from ..models import get_variant
    from ..table import format_table

    name = config["model"]["name"]
    options = config["model"].get("options", {})
    clip = ClipSpec.from_dict(config["clip"], FOLDER_CONFIG)
    classes = config["classes"]
    variant = get_variant(name)

    input_text = (
        f"{clip.describe()} The input contract as data: `config.json` -> `clip`."
        f"\n\nOptions of `create_model`: `{json.dumps(options)}`."
    )
    shown = ", ".join(f"`{c}`" for c in classes[:20]) + (f", ... ({len(classes) - 20} more)" if len(classes) > 20 else "")
    classes_text = f"{len(classes)} classes, in the order of the model's outputs (`config.json` -> `classes`): {shown}."

    rows = []
    for evaluation in config.get("evaluations", []):
        rows.append(
            (
                evaluation["source"],
                evaluation.get("protocol", ""),
                *(_percent(evaluation.get(k)) for k in ("top1", "top5", "mean_class_accuracy")),
                evaluation.get("videos", ""),
            )
        )
    figures = []
    if rows:
        figures.append(
            "Measured with these weights (accuracy, %):\n\n"
            + format_table(("measured by", "protocol", "top-1", "top-5", "mean class", "videos"), rows)
        )
    else:
        figures.append("No measurement of these weights was recorded (`artnet test`, then `artnet export --metrics`).")
    paper = config.get("paper")
    if paper:
        reported = " / ".join(f"{paper[k]:.1f}" for k in ("top1", "top5") if paper.get(k) is not None)
        figures.append(
            f"The paper reports {reported} (top-1{' / top-5' if paper.get('top5') is not None else ''}, %) for this recipe "
            f"(`{paper['recipe']}`, {paper['table']}); not measured by artnet."
        )

    provenance_lines = [f"artnet {config.get('artnet_version', '?')}, model `{name}`: {variant.description}."]
    if "converted_from" in config:
        source = config["converted_from"]
        provenance_lines.append(
            f"Converted with `artnet convert` from the released Caffe weights `{source.get('caffemodel')}` "
            f"({source.get('prototxt')}, classifier `{source.get('classifier')}`, {source.get('channels', 'BGR')} input)."
        )
    if "trained" in config:
        trained = config["trained"]
        provenance_lines.append(f"Trained with artnet: run `{trained.get('run')}`, {trained.get('iteration')} iterations.")
    title = f"{name} ({config['trained']['run']})" if "trained" in config else name
    return {
        "title": title,
        "description": f"A network of [Appearance-and-Relation Networks for Video Classification]({PAPER_URL})"
        " (Wang et al., CVPR 2018) for the artnet library.",
        "variant": name,
        "input": input_text,
        "classes": classes_text,
        "figures": "\n\n".join(figures),
        "provenance": "\n\n".join(provenance_lines),
        "citation": CITATION,
    }


def _percent(value: Any) -> str:
    return "" if value is None else f"{value:.2f}"
