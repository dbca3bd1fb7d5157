"""What sliding windows, test-time augmentation (TTA) and the dense CRF cost and buy.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/inference_modes.py /path/to/camvid [--model fast_scnn.camvid]
        [--max-images N] [--skip-accuracy] [--skip-memory]

Part 1 (accuracy): mIoU on CamVid val and milliseconds per image (one thread, one process) for plain
whole-image inference, TTA with flip, TTA with scales 0.5..1.75 + flip, the dense CRF, and TTA + CRF, via
``segbench.engine.evaluate.evaluate`` (which segments each image by every step of the chain in one pass).

Part 2 (memory): peak RSS (MiB, the child's own ``VmHWM``, see ``process_peak_rss_mib``) of
``segbench predict MODEL photo.jpg --mode whole|slide|auto`` on a synthetic 4000 x 3000 JPEG (a CamVid
sample image enlarged with bicubic interpolation), each in a fresh process, plus the same command on the
original 480 x 360 image (the cost of Python, torch and the model alone), and the auto rule's prediction
of whole-image memory for 4000 x 3000.

Writes benchmarks/results/inference_modes.json (a part skipped now is kept from an earlier run) and prints
Markdown tables. Times depend on the machine and
what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segbench.data.datasets import open_dataset, sample_dir
from segbench.engine.crf import CRFConfig
from segbench.engine.evaluate import evaluate
from segbench.engine.inference import InferenceConfig, estimate_whole_memory_mib
from segbench.models import load_model

MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def accuracy(camvid: str, model_spec: str, max_images: int) -> list[dict]:
    loaded = load_model(model_spec)
    info = loaded.info
    dataset = open_dataset(camvid, "val")
    rows: dict[str, dict] = {}
    runs = [
        ("flip", InferenceConfig(flip=True), CRFConfig()),
        ("ms+flip", InferenceConfig(scales=MS_SCALES, flip=True), CRFConfig()),
        ("", InferenceConfig(), CRFConfig()),
    ]
    for label, cfg, crf in runs:
        t0 = time.perf_counter()
        res = evaluate(
            loaded.model,
            dataset,
            info.num_classes,
            info.preprocessing,
            max_images=max_images,
            progress=True,
            desc=label or "crf",
            inference=cfg.for_model(info),
            crf=crf,
        )
        wall = time.perf_counter() - t0
        for v in res.variants_dicts(list(info.class_names)):
            name = {"plain": "plain", "tta": f"TTA {label}", "crf": "CRF", "tta+crf": f"TTA {label} + CRF"}[v["name"]]
            entry = {
                "step": name,
                "miou": v["miou"],
                "pixel_accuracy": v["pixel_accuracy"],
                "ms_per_image": v["ms_per_image"],
                "num_images": res.num_images,
                "inference": cfg.for_model(info).describe(),
                "crf": crf.describe() if "crf" in v["name"] else None,
            }
            rows.setdefault(name, {"runs": []})["runs"].append(entry)
        print(f"[{label or 'crf'}] {res.num_images} images, {wall:.0f} s", file=sys.stderr, flush=True)
    out = []
    for name, r in rows.items():  # plain ran three times: report each run's time, the first's mIoU
        first = r["runs"][0]
        out.append({**first, "ms_per_image_runs": [x["ms_per_image"] for x in r["runs"]]})
    return out


# Runs the CLI in a fresh interpreter and reports that process's own peak RSS (VmHWM): ru_maxrss from
# os.wait4 would carry this (large) parent's high-water mark over exec into the child's figure.
_WRAP = (
    "import sys; from segbench.cli import main; from segbench.bench.memory import process_peak_rss_mib as p; "
    "code = main(sys.argv[1:]); print(f'PEAK_RSS_MIB {p()}', file=sys.stderr); sys.exit(code)"
)


def _peak_rss_mib(args: list[str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAP, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"segbench {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_MIB ")][-1]
    return float(peak.split()[1]), wall


def memory(model_spec: str) -> dict:
    src = min((sample_dir() / "val").glob("*.png"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "photo_4000x3000.jpg"
        Image.open(src).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(big, quality=90)
        small = Path(tmp) / "photo_480x360.jpg"
        Image.open(src).convert("RGB").save(small, quality=90)
        for image, mode in ((small, "whole"), (big, "whole"), (big, "slide"), (big, "auto")):
            out = Path(tmp) / f"out_{image.stem}_{mode}"
            cmd = ["predict", model_spec, str(image), "--mode", mode, "--output", str(out), "--quiet"]
            rss, wall = _peak_rss_mib(cmd)
            label = np.array(Image.open(next(out.glob("*_label.png"))))
            rows.append(
                {
                    "image": f"{Image.open(image).width} x {Image.open(image).height}",
                    "mode": mode,
                    "peak_rss_mib": rss,
                    "wall_s": wall,
                    "command": " ".join(["segbench", *cmd[0:2], image.name, *cmd[3:5]]),
                    "label_shape": list(label.shape),
                }
            )
            print(f"[memory] {rows[-1]['image']} {mode}: {rss:.0f} MiB, {wall:.1f} s", file=sys.stderr, flush=True)
    loaded = load_model(model_spec)
    cfg = InferenceConfig(mode="auto").for_model(loaded.info)
    estimate = estimate_whole_memory_mib(loaded.model, (3000, 4000), cfg.resolved_window())
    return {
        "rows": rows,
        "auto_window": list(cfg.resolved_window()),
        "auto_stride": list(cfg.resolved_stride()),
        "auto_estimate_whole_mib_4000x3000": estimate,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("camvid")
    p.add_argument("--model", default="fast_scnn.camvid")
    p.add_argument("--max-images", type=int, default=0)
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--output", default="benchmarks/results/inference_modes.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    result = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if not args.skip_accuracy:
        result["accuracy"] = accuracy(args.camvid, args.model, args.max_images)
        print(f"\n| step | mIoU (%) | ms / image | extra ms / image |  # {args.model}, CamVid val, 1 thread")
        print("| --- | ---: | ---: | ---: |")
        plain = result["accuracy"][0]["ms_per_image"]
        for r in result["accuracy"]:
            extra = "-" if r["step"] == "plain" else f"{r['ms_per_image'] - plain:+.0f}"
            print(f"| {r['step']} | {r['miou'] * 100:.2f} | {r['ms_per_image']:.0f} | {extra} |")
    if not args.skip_memory:
        result["memory"] = memory(args.model)
        print("\n| image | mode | peak RSS (MiB) | wall (s) |")
        print("| --- | --- | ---: | ---: |")
        for r in result["memory"]["rows"]:
            print(f"| {r['image']} | {r['mode']} | {r['peak_rss_mib']:.0f} | {r['wall_s']:.1f} |")
        print(
            f"auto rule's whole-image estimate for 4000 x 3000: {result['memory']['auto_estimate_whole_mib_4000x3000']:.0f} MiB"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and (args.skip_accuracy or args.skip_memory):  # keep the part not rerun
        previous = json.loads(out.read_text())
        for part in ("accuracy", "memory"):
            if part not in result and part in previous:
                result[part] = previous[part]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
