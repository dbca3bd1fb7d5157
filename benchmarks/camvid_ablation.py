"""Recipe ablation on a group-disjoint split: one training run per choice, each changing one thing.

Usage::

    python benchmarks/camvid_ablation.py --data /path/to/camvid [--recipe configs/camvid/fast_scnn_seq.yaml]
        [--iters 1500] [--device cpu|cuda] [--variants baseline,ema,...] [--out runs/ablation]

Every variant is ``segbench train RECIPE --set data.root=DATA --set out_dir=OUT/NAME --set iters=N`` plus
its own ``--set`` overrides (see :data:`VARIANTS`), run one after the other in fresh processes. The recipe's
validation split decides (``seq_val`` in the default recipe: the 101 frames of drive 0006R0, a drive no
training frame comes from), and each run is scored by its last validation, at the end of a fixed schedule,
so no checkpoint is picked on the validation split. A variant whose run folder already holds the final
iteration is read, not rerun; an interrupted one is resumed (``--resume``). ``OUT/ablation.md`` holds the
table (mIoU, pixel accuracy, mean class accuracy, minutes, the exact overrides) and ``OUT/ablation.json``
the same figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "camvid" / "fast_scnn_seq.yaml"

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("the recipe as it is", []),
    "photometric_mild": ("brightness 0.875-1.125 only (no gamma, blur, noise)",
                         ["data.brightness_range=[0.875,1.125]", "data.gamma_range=[]", "data.blur_prob=0",
                          "data.noise_std=0"]),
    "photometric_strong": ("brightness 0.5-1.5, gamma 0.6-1.6, blur p 0.3, noise std up to 10",
                           ["data.brightness_range=[0.5,1.5]", "data.gamma_range=[0.6,1.6]", "data.blur_prob=0.3",
                            "data.noise_std=10"]),
    "no_photometric": ("no photometric augmentation", ["data.photometric=false"]),
    "scale_narrow": ("scale range 0.75-1.25", ["data.scale_range=[0.75,1.25]"]),
    "crop_small": ("crop 288 x 384", ["data.crop_size=[288,384]"]),
    "weights_none": ("no class weighting", ["class_weighting=none"]),
    "weights_median": ("median-frequency class weighting", ["class_weighting=median_frequency"]),
    "ohem": ("OHEM cross-entropy instead of CE", ["loss.ce=0", "loss.ohem=1"]),
    "label_smoothing": ("label smoothing 0.1", ["loss.label_smoothing=0.1"]),
    "ema": ("weight EMA, decay 0.999", ["ema_decay=0.999"]),
    "weight_decay_high": ("weight decay 4e-4 (10 x the paper's 4e-5)", ["optim.weight_decay=4e-4"]),
    "seed1": ("the recipe as it is, training seed 1 (seed-to-seed spread)", ["seed=1"]),
    # how much the second training drive is worth: seq_train's frames of one drive only (validation unchanged:
    # seq_val's frames inside the groups named, all of drive 0006R0)
    "drive_0016E5_only": ("train on drive 0016E5's 305 frames only (no 0001TP)",
                          ["data.split_by=^([^_]+)_", "data.val_groups=['0001TP','0006R0']"]),
    "drive_0001TP_only": ("train on drive 0001TP's 62 frames only (no 0016E5)",
                          ["data.split_by=^([^_]+)_", "data.val_groups=['0016E5','0006R0']"]),
}  # fmt: skip
"""name -> (what changes from the recipe, its ``--set`` overrides)."""


def final_row(run_dir: Path, iters: int) -> dict | None:
    """The ``metrics.csv`` row of iteration ``iters`` with a validation, or None when the run has not got there."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("miou")]
    return next((r for r in rows if int(r["iter"]) == iters), None)


def run_variant(name: str, args, overrides: list[str]) -> dict:
    """Train (or resume, or read) one variant; its figures in percent and the minutes it took."""
    run_dir = args.out / name
    sets = [f"data.root={args.data}", f"out_dir={run_dir}", f"iters={args.iters}", f"device={args.device}",
            *args.set, *overrides]  # fmt: skip
    row = final_row(run_dir, args.iters)
    if row is None:
        cmd = [sys.executable, "-m", "segbench.cli", "train", str(args.recipe), "--quiet"]
        cmd += [part for s in sets for part in ("--set", s)]
        if (run_dir / "last.pt").exists():
            cmd.append("--resume")
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=os.environ.copy())
        if done.returncode != 0:
            return {"name": name, "error": f"exit code {done.returncode} (see the output above)", "sets": overrides}
        print(f"{name}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
        row = final_row(run_dir, args.iters)
    if row is None:
        return {"name": name, "error": f"{run_dir}/metrics.csv has no validation at iteration {args.iters}",
                "sets": overrides}  # fmt: skip
    return {
        "name": name,
        "miou": 100 * float(row["miou"]),
        "pixel_accuracy": 100 * float(row["pixel_accuracy"]),
        "mean_accuracy": 100 * float(row["mean_accuracy"]),
        "train_min": float(row["elapsed_s"]) / 60,
        "sets": overrides,
    }


def table(results: list[dict], args) -> str:
    """The Markdown table, mIoU differences against the baseline when it ran."""
    base = next((r.get("miou") for r in results if r["name"] == "baseline"), None)
    lines = [
        f"Recipe `{args.recipe}`, {args.iters} iterations each, device {args.device}; scored by the last validation.",
        "",
        "| variant | change | mIoU | vs baseline | pixel acc | mean acc | train min | overrides |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        change = VARIANTS[r["name"]][0]
        sets = " ".join(f"`{s}`" for s in r["sets"]) or "-"
        if "error" in r:
            lines.append(f"| {r['name']} | {change} | - | - | - | - | - | {sets} (failed: {r['error']}) |")
            continue
        delta = f"{r['miou'] - base:+.2f}" if base is not None and r["name"] != "baseline" else "-"
        lines.append(f"| {r['name']} | {change} | {r['miou']:.2f} | {delta} | {r['pixel_accuracy']:.2f} | "
                     f"{r['mean_accuracy']:.2f} | {r['train_min']:.1f} | {sets} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", required=True, help="dataset root (CamVid in SegNet's layout for the default recipe)")
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    p.add_argument("--set", action="append", default=[], help="an override for every variant, e.g. threads=2")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = p.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {', '.join(unknown)}; expected names from {', '.join(VARIANTS)}")
    if args.iters < 1:
        p.error(f"--iters: must be at least 1, got {args.iters}")
    args.names = names
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = [run_variant(name, args, VARIANTS[name][1]) for name in args.names]
    text = table(results, args)
    for name, content in (("ablation.md", text), ("ablation.json", json.dumps(results, indent=1))):
        tmp = args.out / f".{name}.tmp"
        tmp.write_text(content)
        os.replace(tmp, args.out / name)
    print(text)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
