"""Where the maps of ``artnet explain`` fall on the built-in dataset, whose generator knows where each
clip's object is: the share of a map's mass inside the object's mask, against the mask's share.

    python benchmarks/explain_masks.py --checkpoint runs/demo/artnet_r18_d/final.pt --data ~/.cache/artnet/synthetic

For every test video, the maps of its own class (Grad-CAM, the centre clip, centre crop) at each
SMART block; the object (the patterned disc, the dots, the hoops, the bubbles, the lamps) from
:meth:`~artnet.data.synthetic.SyntheticDataset.object_mask`, cut as the clip and averaged over
each cell of the map (:func:`artnet.engine.explain.mass_on_object`). A map that ignored the object
would put the mask's share of its mass on it; "lift" is the ratio. Means over videos; a map that is
zero everywhere (Grad-CAM's ReLU left nothing) has no share and is counted apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from artnet.data import synthetic  # noqa: E402
from artnet.engine.explain import Explainer, named_blocks, object_mass, smart_of  # noqa: E402
from artnet.machine import cpu_name  # noqa: E402
from artnet.table import format_table  # noqa: E402


def smart_blocks(explainer: Explainer) -> list[str]:
    return [name for name, block in named_blocks(explainer.model).items() if smart_of(block) is not None]


def table(found: dict, blocks: list[str]) -> str:
    rows = []
    for block in blocks:
        row = [block]
        for kind, first, second in (("temporal", "relation", "appearance"), ("appearance", "appearance", "relation")):
            a, b = found[(block, kind, first)], found[(block, kind, second)]
            row += [f"{a.share:.2f} ({a.lift:.1f}x)", f"{b.share:.2f} ({b.lift:.1f}x)", f"{np.mean(a.mask + b.mask):.2f}"]
        row.append(sum(s.empty for (b, _, _), s in found.items() if b == block))
        rows.append(row)
    headers = (
        "block",
        "temporal: relation map",
        "temporal: appearance map",
        "temporal: mask",
        "appearance: appearance map",
        "appearance: relation map",
        "appearance: mask",
        "empty maps",
    )
    return format_table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/demo/artnet_r18_d/final.pt")
    parser.add_argument("--data", default=None, help="the built-in dataset the model was trained on (default: the demo's)")
    parser.add_argument("--blocks", nargs="*", default=None, help="default: every block with a SMART")
    parser.add_argument("--every", type=int, default=1, help="take every n-th test video (default: all)")
    args = parser.parse_args()
    if args.data is None:
        from artnet.demo import default_cache

        args.data = default_cache()
    dataset = synthetic.load(args.data)
    explainer = Explainer(args.checkpoint, device="cpu")
    blocks = args.blocks or smart_blocks(explainer)
    videos = dataset.clips("test")[:: args.every]
    started = time.perf_counter()
    found = object_mass(explainer, dataset, videos, blocks)
    print(
        f"{len(videos)} test videos of {args.data}, {args.checkpoint};"
        f" {time.perf_counter() - started:.0f} s on {cpu_name()}, {os.cpu_count()} CPUs"
    )
    print("share of the map's mass on the object (lift: that share over the mask's share of the clip)")
    print(table(found, blocks))


if __name__ == "__main__":
    main()
