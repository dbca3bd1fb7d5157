"""Print the README's architecture table: parameters and GFLOPs of every registered network.

Usage: python benchmarks/arch_table.py [NUM_CLASSES]   (default 21)

Counts use segbench's own `count_params` and `count_flops` (the functions behind `segbench benchmark`),
on the meta device: shapes only, no arithmetic, so the counts equal a real run's and take seconds.
Parameters exclude auxiliary heads; GFLOPs = FlopCounterMode total / 1e9 (1 multiply-add = 2 FLOPs).
"""

from __future__ import annotations

import sys

import torch

from segbench.bench import count_flops, count_params
from segbench.models import available_weights, build_model, list_models


def main() -> None:
    num_classes = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    print("| model | params (M) | GFLOPs at 360 x 480 | GFLOPs at 520 x 520 | weights tags |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name in list_models():
        with torch.device("meta"):
            model = build_model(name, num_classes=num_classes).eval()
        small, large = (count_flops(model, (1, 3, h, w))["gflops"] for h, w in ((360, 480), (520, 520)))
        tags = ", ".join(f"`{name}.{t}`" for t in available_weights(name)) or "-"
        print(f"| `{name}` | {count_params(model) / 1e6:.2f} | {small:.2f} | {large:.2f} | {tags} |")


if __name__ == "__main__":
    main()
