"""Write the model card and training-curve plot of a shipped zoo model from its run folder.

Usage:
    python benchmarks/make_model_card.py TAG RUN_DIR EVAL_JSON --train-command "..." [--note "..."]

TAG is the zoo tag (``fast_scnn.camvid``); RUN_DIR the training run (config.yaml, metrics.csv, best.pt);
EVAL_JSON the output of ``segbench evaluate TAG --data DIR --split val --json``. Writes
``src/segbench/zoo/TAG.md`` and ``src/segbench/zoo/TAG.curve.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import yaml

from segbench.bench.env import environment_info
from segbench.models import load_model
from segbench.models.weights import zoo_dir

REFERENCES = {
    "fast_scnn": 'Poudel, Liwicki, Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network", arXiv 1902.04502',
    "lraspp_mobilenet_v3_large": 'Howard et al., "Searching for MobileNetV3", arXiv 1905.02244 (LR-ASPP); '
    "segbench's implementation in torchvision's layout (same outputs as torchvision's with the same weights)",
    "deeplabv3_mobilenet_v3_large": 'Chen et al., "Rethinking Atrous Convolution for Semantic Image '
    'Segmentation", arXiv 1706.05587, on MobileNetV3-Large (Howard et al., arXiv 1905.02244)',
    "deeplabv3plus_mobilenet_v3_large": 'Chen et al., "Encoder-Decoder with Atrous Separable Convolution for '
    'Semantic Image Segmentation", arXiv 1802.02611, on MobileNetV3-Large (Howard et al., arXiv 1905.02244)',
    "unet_resnet18": 'Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image '
    'Segmentation", arXiv 1505.04597, with a ResNet-18 encoder (He et al., arXiv 1512.03385)',
}


def origin(arch: str, cfg: dict) -> str:
    """How the run started: from scratch, or with another CamVid model's encoder."""
    source = (cfg.get("model") or {}).get("encoder_init", "none")
    if source in (None, "none"):
        return f"{arch} trained from scratch (random initialisation, no pretrained weights) on CamVid train."
    return (
        f"{arch} trained on CamVid train. No ImageNet or other pretrained weights: the encoder started from\n"
        f"`{source}` (itself trained from scratch on CamVid train, see its model card), the rest from random\n"
        "initialisation (`model.encoder_init` in the recipe)."
    )


def plot_curve(rows: list[dict], path: Path, title: str) -> None:
    it = [int(r["iter"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    val = [(int(r["iter"]), float(r["miou"]) * 100) for r in rows if r["miou"]]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(it, loss, color="tab:blue", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot([v[0] for v in val], [v[1] for v in val], "o-", color="tab:red", ms=3)
    ax2.set_ylabel("val mIoU (%)", color="tab:red")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def resume_lines(run_dir: Path) -> list[str]:
    """The settings each resume changed (``resumes.yaml``, written by ``segbench train --resume``)."""
    path = run_dir / "resumes.yaml"
    if not path.exists():
        return []
    lines = ["## Resumed with changed settings", "",
             "The recipe above is the final stretch's; earlier stretches differed:", ""]
    for entry in yaml.safe_load(path.read_text()):
        changes = ", ".join(f"`{k}` {old!r} -> {new!r}" for k, (old, new) in entry["changed"].items())
        lines.append(f"- at iteration {entry['iteration']}: {changes}")
    return lines + [""]


def preprocessing_lines(preprocessing) -> list[str]:
    """The card's Preprocessing section: the weights spec's input rule, which training used too."""
    return ["## Preprocessing", "", f"{preprocessing.describe()}.", "",
            "Training normalised its crops the same way; `segbench predict`, `evaluate`, `compare` and the",
            "exported files apply it (`segbench.models.load_model(TAG).info.preprocessing`, stored in exported",
            "files' metadata).",
            ""]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("tag")
    p.add_argument("run_dir", type=Path)
    p.add_argument("eval_json", type=Path)
    p.add_argument("--train-command", required=True)
    p.add_argument("--export-command", required=True)
    p.add_argument("--eval-command", required=True)
    p.add_argument("--note", default="")
    a = p.parse_args()

    arch = a.tag.split(".")[0]
    cfg = yaml.safe_load((a.run_dir / "config.yaml").read_text())
    rows = list(csv.DictReader((a.run_dir / "metrics.csv").open()))
    best = torch.load(a.run_dir / "best.pt", map_location="cpu", weights_only=False)
    last = torch.load(a.run_dir / "last.pt", map_location="cpu", weights_only=False)
    ev = json.loads(a.eval_json.read_text())
    loaded = load_model(a.tag)
    params = sum(t.numel() for t in loaded.model.parameters())
    weights_file = zoo_dir() / f"{a.tag}.safetensors"
    env = environment_info("cpu")
    curve = zoo_dir() / f"{a.tag}.curve.png"
    plot_curve(rows, curve, f"{a.tag}: training loss and val mIoU")

    # the run's data.root is a path on the training machine: the card shows the placeholder of the commands
    recipe = {**cfg, "data": {**cfg.get("data", {}), "root": "/path/to/camvid"}}
    wall_min = last["elapsed_s"] / 60
    lines = [
        f"# {a.tag}",
        "",
        origin(arch, cfg),
        f"Reference: {REFERENCES.get(arch, arch)}.",
        "",
        "| | |",
        "| --- | --- |",
        f"| val mIoU (11 classes) | **{ev['miou'] * 100:.2f}** |",
        f"| val pixel accuracy | {ev['pixel_accuracy'] * 100:.2f} |",
        f"| val mean class accuracy | {ev['mean_accuracy'] * 100:.2f} |",
        f"| parameters (inference, no aux head) | {params:,} |",
        f"| weights file | {weights_file.name}, fp16, {weights_file.stat().st_size / 1e6:.2f} MB |",
        f"| iterations | {cfg['iters']} (batch {cfg['batch_size']}; best val mIoU at iteration {best['iteration']}) |",
        f"| wall time | {wall_min:.0f} min on {env['cpu']}, {cfg['threads']} thread(s) |",
        "",
        "Metrics measured by `segbench evaluate` on the 101 CamVid val images at 360 x 480, whole-image",
        "inference, void pixels ignored; the val split was also used to pick the checkpoint (best val mIoU),",
        "so these are not held-out test figures.",
        "",
        "## Per-class IoU (val, %)",
        "",
        "| class | IoU | accuracy |",
        "| --- | ---: | ---: |",
    ]
    for name, iou in ev["iou"].items():
        acc = ev["accuracy"][name]
        lines.append(f"| {name} | {'-' if iou is None else f'{iou * 100:.2f}'} | {'-' if acc is None else f'{acc * 100:.2f}'} |")
    lines += [
        "",
        "## Data",
        "",
        "CamVid, SegNet's 11-class split: 367 train images (training), 101 val images (model selection and the",
        "figures above), 480 x 360 RGB; label 11 (Unlabelled) ignored in the loss and the metrics.",
        "",
        *preprocessing_lines(loaded.info.preprocessing),
        "## Commands",
        "",
        "```bash",
        a.train_command,
        a.export_command,
        a.eval_command,
        "```",
        "",
        f"The export keeps the best checkpoint (by val mIoU, checked every {cfg['val_every']} iterations) and drops the",
        "auxiliary head, which only serves training.",
        "",
        "## Recipe (resolved)",
        "",
        "```yaml",
        yaml.safe_dump(recipe, sort_keys=False).strip(),
        "```",
        "",
        *resume_lines(a.run_dir),
        "## Training curve",
        "",
        f"![training loss and val mIoU]({curve.name})",
        "",
        f"Environment: torch {env['torch']}, torchvision {env['torchvision']}, {env['cpu']}, {env['cpu_count']} cores.",
    ]
    if a.note:
        lines += ["", a.note]
    (zoo_dir() / f"{a.tag}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {zoo_dir() / (a.tag + '.md')} and {curve}")


if __name__ == "__main__":
    main()
