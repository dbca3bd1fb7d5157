"""Build a report.html of the size of the CamVid val report (101 images, five rows) without running models,
to time the page in a browser where the CPU cannot evaluate five networks on 101 frames in reasonable time.

The images and ground truths are the dataset's own; each row's "prediction" is the ground truth with a
different share of its pixels set to a random class (SYNTHETIC masks, not a model's output: the numbers in
the report mean nothing, only its size and structure match). Then time it in Chromium with
``SEGBENCH_FULL_REPORT=OUT pytest -m slow tests/report/test_report_browser.py -k full -s``.

Usage: python benchmarks/report_scale.py DATASET OUT [--split val]

Measured 2026-12-01 on the project's 2-core machine while it was shared with other jobs (load average about
10): ``python benchmarks/report_scale.py /path/to/camvid OUT`` (101 images, 27 MB
report.html: the random pixels compress worse than real masks), then the command above: opened and showed
its first image in 3.16 s, the next image in 0.85 s, sorted the per-image table in 0.29 s (bounds asserted:
15 s and 3 s).
"""

from __future__ import annotations

import argparse

import numpy as np

from segbench.data.datasets import open_dataset
from segbench.report import write_report
from segbench.report.masks import MaskStore

NOISE = (0.02, 0.05, 0.1, 0.2, 0.3)  # share of pixels each synthetic row gets wrong at random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    ds = open_dataset(args.data, args.split)
    names, palette = list(ds.class_set.names), list(ds.class_set.palette)
    store = MaskStore(f"{args.out}/browser", palette, len(names))
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        item = ds[i]
        if "error" in item:
            continue
        for row, share in enumerate(NOISE):
            pred = np.where(item["mask"] < len(names), item["mask"], 0)
            flip = rng.random(pred.shape) < share
            pred = np.where(flip, rng.integers(0, len(names), pred.shape), pred)
            store.add(row, item, pred)
    rows = [{"model": f"synthetic_{int(s * 100)}pct", "miou": None, "latency_ms_p50": None} for s in NOISE]
    write_report(args.out, rows=rows, class_names=names, palette=palette, grid=None, env={},
                 settings={"data": args.data, "split": args.split, "images": len(store.images),
                           "note": "SYNTHETIC masks (ground truth with random pixels flipped): size test only"},
                 masks=store, interactive=True)  # fmt: skip
    print(f"{args.out}/report.html: {len(store.images)} images, {len(rows)} rows")


if __name__ == "__main__":
    main()
