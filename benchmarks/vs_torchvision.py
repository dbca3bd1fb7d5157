"""Latency of segbench's own FCN / DeepLabv3 against torchvision's, same weights, same input, one process.

Usage: python benchmarks/vs_torchvision.py [H W]   (prints a markdown table; CPU, torch's default threads)
The two are measured alternately, three rounds each, and the median of the three p50s is reported.
"""

from __future__ import annotations

import statistics
import sys

import torch
from torchvision.models import segmentation as tvseg

from segbench.bench import measure_latency
from segbench.models import build_model
from segbench.models.convert import convert_torchvision_state


class TorchvisionOut(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def main() -> None:
    h, w = (int(v) for v in sys.argv[1:3]) if len(sys.argv) >= 3 else (360, 480)
    print(f"| model | segbench p50 (ms) | torchvision p50 (ms) | ratio |  # {h}x{w}, {torch.get_num_threads()} threads")
    print("| --- | ---: | ---: | ---: |")
    for name in ("fcn_resnet50", "deeplabv3_resnet50"):
        tv = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=False).eval()
        ours = build_model(name, num_classes=21).eval()
        ours.load_state_dict(convert_torchvision_state(tv.state_dict()))
        runs = {"segbench": [], "torchvision": []}
        for _ in range(3):
            for key, model in (("segbench", ours), ("torchvision", TorchvisionOut(tv))):
                runs[key].append(measure_latency(model, (1, 3, h, w), min_time_s=3.0).latency_ms_p50)
        a, b = statistics.median(runs["segbench"]), statistics.median(runs["torchvision"])
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
