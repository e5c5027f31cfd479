"""torch.hub entry points: one per variant of the model zoo.

    model = torch.hub.load("path/to/artnet", "artnet_r18_d", source="local", pretrained="weights/")
    model = torch.hub.load("owner/artnet", "artnet_r18_d", pretrained="checkpoint.pt", num_classes=101)

Each entry point is ``artnet.create_model(name, pretrained=False, **options)``: ``pretrained`` takes a
checkpoint file, a model folder (``artnet export --format hf``) or a Hugging Face Hub repository id.
"""

import os
import sys

dependencies = ["torch", "numpy", "av", "yaml"]

# The repository's own code, whatever artnet an environment has installed.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from artnet.models import create_model as _create_model  # noqa: E402
from artnet.models import get_variant as _get_variant  # noqa: E402
from artnet.models import list_models as _list_models  # noqa: E402


def _entry_point(name: str):
    def entry_point(pretrained=False, **options):
        return _create_model(name, pretrained=pretrained, **options)

    entry_point.__name__ = entry_point.__qualname__ = name
    entry_point.__doc__ = f"{_get_variant(name).description}.\n\nSee artnet.create_model for pretrained and the options."
    return entry_point


for _name in _list_models():
    globals()[_name] = _entry_point(_name)
