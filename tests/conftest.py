import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARTNET_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference" / "artnet"
MEDIA = SHARED / "media"


def require(path: Path) -> Path:
    """Skip (with the reason) when a shared reference file is not beside the project."""
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is expected beside the project)")
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
