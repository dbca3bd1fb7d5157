"""Backends side by side: latency and accuracy of each (model, backend), every pair in a fresh process.

Usage:
    python benchmarks/backends.py --camvid /path/to/camvid [--threads 2] [--size 520 520]
        [--models lraspp_mobilenet_v3_large.camvid deeplabv3_mobilenet_v3_large fcn_resnet50]
        [--backends eager channels_last bf16 compile onnxruntime onnxruntime_int8 openvino openvino_bf16
                    openvino_int8]
        [--images 20] [--min-time 5] [--repeats 3] [--output benchmarks/results/backends_cpu_520]

For each model and backend, one subprocess: prepare the backend (``segbench.bench.backends.prepare``), time
it on a random ``(1, 3, H, W)`` input with ``segbench.bench.measure_latency`` (median over at least
``--min-time`` seconds after warm-up), then segment CamVid val images at their own size (360 x 480). The
timing is repeated ``--repeats`` times in fresh processes, round after round over all pairs (so a change of the
machine's load falls on every backend alike); the table gives the median of the rounds' p50s and their spread
(max - min, in % of it):

- a model whose classes are CamVid's (``ARCH.camvid``): mIoU against the labels, on the whole val split;
- a model with random weights (a bare ``ARCH``; the same seed in every process, so every backend runs the
  same network): mIoU of its predictions scored against eager fp32's, on the first ``--images`` images
  ("agreement"; 100 = identical predictions). Random weights say nothing about accuracy itself, only whether
  the backend computes the same function.

Every row also gives the fraction of pixels labelled as eager labels them and the largest logit difference from
eager's on the first two images, relative to the range of eager's logits.

int8 ranges are calibrated on the first 16 CamVid *train* images (not the val images it is scored on).
Writes ``rows.json`` and ``table.md`` into ``--output`` and prints the table. Timings depend on what else
runs on the machine: run it on an otherwise idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segbench.bench.backends import BACKENDS
from segbench.bench.select import native_candidates

MODELS = ("lraspp_mobilenet_v3_large.camvid", "deeplabv3_mobilenet_v3_large", "fcn_resnet50")


def one(args) -> dict:
    """Measure one (model, backend) in this process; returns its row."""
    import numpy as np
    import torch

    from segbench.bench import measure_latency
    from segbench.bench.backends import prepare
    from segbench.data.datasets import open_dataset
    from segbench.data.transforms import preprocess
    from segbench.metrics import ConfusionMatrix
    from segbench.models import load_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # bare names: the same random weights in every process
    bare = "." not in args.one
    loaded = load_model(args.one, weights="none" if bare else None)
    model, info = loaded.model.eval(), loaded.info
    row = {
        "model": info.name,
        "backend": args.backend,
        "weights": info.weights,
        "threads": args.threads,
        "input_size": list(args.size),
        "batch": 1,
    }
    train = open_dataset(args.camvid, "train")
    calibration = [preprocess(train[i]["image"], info.preprocessing) for i in range(min(16, len(train)))]
    h, w = args.size
    example = torch.randn(1, 3, h, w)
    t0 = time.perf_counter()
    predictor = prepare(model, args.backend, example, calibration=calibration)
    row["prepare_s"] = time.perf_counter() - t0
    row["notes"] = predictor.notes
    lat = measure_latency(predictor, (1, 3, h, w), min_time_s=args.min_time, max_iters=1000)
    row.update({k: getattr(lat, k) for k in ("latency_ms_p50", "latency_ms_p90", "latency_ms_std", "iters")})
    if args.latency_only:
        return row

    val = open_dataset(args.camvid, "val")
    labelled = list(val.class_set.names) == list(info.class_names)
    n = len(val) if labelled else min(args.images, len(val))
    cm, agree = ConfusionMatrix(info.num_classes), ConfusionMatrix(info.num_classes)
    preds, logits_kept = [], []
    reference = None if args.backend == "eager" else np.load(args.reference)
    ref_logits = None if args.backend == "eager" else np.load(args.reference_logits)
    same = total = 0
    diff = spread = 0.0
    with torch.inference_mode():
        for i in range(n):
            item = val[i]
            logits = predictor(preprocess(item["image"], info.preprocessing))
            pred = logits.argmax(1)
            preds.append(pred[0].numpy().astype(np.uint8))
            if i < 2:  # logits of the first two images, to compare with eager's
                if ref_logits is None:
                    logits_kept.append(logits[0].numpy())
                else:
                    diff = max(diff, float(np.abs(logits[0].numpy() - ref_logits[i]).max()))
                    spread = max(spread, float(ref_logits[i].max() - ref_logits[i].min()))
            if labelled:
                cm.update(pred, torch.from_numpy(item["mask"]).unsqueeze(0))
            if reference is not None:
                target = torch.from_numpy(reference[i].astype(np.int64)).unsqueeze(0)
                agree.update(pred, target)
                same += int((pred == target).sum())
                total += target.numel()
    row["images"] = n
    if args.backend == "eager":
        np.save(args.reference, np.stack(preds))
        np.save(args.reference_logits, np.stack(logits_kept))
        row["eager_classes_predicted"] = len(np.unique(np.stack(preds)))
        row.update(agreement_miou=1.0, pixel_agreement=1.0, logits_rel_diff=0.0)
    else:
        row.update(
            agreement_miou=agree.compute().miou,
            pixel_agreement=same / total,
            logits_rel_diff=diff / spread if spread else None,
        )
    if labelled:
        row["miou"] = cm.compute().miou
        row["accuracy_kind"] = f"mIoU on CamVid val ({n} images)"
    else:
        row["miou"] = row["agreement_miou"]
        row["accuracy_kind"] = f"agreement with eager: mIoU against eager's predictions ({n} CamVid val images)"
    return row


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| model | backend | p50 ms | spread % | speed-up vs eager | mIoU % | Δ mIoU vs eager (points) "
            "| pixels as eager % | max logit diff / eager's range | notes |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    eager = {r["model"]: r for r in rows if r["backend"] == "eager" and not r.get("error")}
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['backend']} | - | - | - | - | - | - | - | error: {r['error']} |")
            continue
        base = eager.get(r["model"])
        speed = f"{base['latency_ms_p50'] / r['latency_ms_p50']:.2f}x" if base else "-"
        delta = f"{(r['miou'] - base['miou']) * 100:+.2f}" if base else "-"
        kind = " (agreement)" if "agreement" in r["accuracy_kind"] else ""
        rel = "-" if r.get("logits_rel_diff") is None else f"{r['logits_rel_diff']:.1e}"
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['latency_ms_p50']:.1f} | {r.get('p50_spread_pct', 0):.0f} | "
            f"{speed} | {r['miou'] * 100:.2f}{kind} | {delta} | {r['pixel_agreement'] * 100:.2f} | {rel} | "
            f"{r['notes']} |"
        )
    classes = {r["model"]: r.get("eager_classes_predicted") for r in eager.values()}
    lines.append("")
    lines.append(
        "mIoU: against CamVid's labels for CamVid-trained weights; for random weights (bare names) it is the "
        "agreement with eager (mIoU of the backend's label maps scored against eager's). Classes eager predicts "
        "on those images: " + ", ".join(f"{m} {c}" for m, c in classes.items()) + " (a random network that "
        "predicts few classes makes agreement easy; the logit difference column does not depend on that)."
    )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camvid", required=True, help="CamVid folder (SegNet layout)")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--backends", nargs="+", default=[b for b in native_candidates()[0] if b in BACKENDS],
                   help="default: the backends segbench prepares itself whose precision this CPU computes natively")
    p.add_argument("--size", nargs=2, type=int, default=[520, 520], metavar=("H", "W"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=20, help="val images for the agreement of random-weight models")
    p.add_argument("--min-time", type=float, default=5.0, help="timed seconds per (model, backend) and round")
    p.add_argument("--repeats", type=int, default=3, help="rounds of timing; the table gives the median (default 3)")
    p.add_argument("--output", default="benchmarks/results/backends_cpu_520")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--reference", help=argparse.SUPPRESS)
    p.add_argument("--reference-logits", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--latency-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        Path(args.row).write_text(json.dumps(one(args)))
        return 0
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    backends = list(dict.fromkeys(args.backends))
    if "eager" in backends:  # eager first: the others are compared with its predictions
        backends.remove("eager")
        backends.insert(0, "eager")
    rows: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # later rounds time again (no accuracy), interleaved with the others
            for spec in args.models:
                for backend in backends:
                    first = repeat == 0
                    if not first and rows[spec, backend].get("error"):
                        continue
                    row_file = Path(tmp) / "row.json"
                    row_file.unlink(missing_ok=True)
                    cmd = [sys.executable, __file__, "--camvid", args.camvid, "--one", spec, "--backend", backend]
                    cmd += ["--size", *map(str, args.size), "--threads", str(args.threads)]
                    cmd += ["--images", str(args.images), "--min-time", str(args.min_time), "--row", str(row_file)]
                    cmd += ["--reference", str(Path(tmp) / f"{spec}.eager.npy")]
                    cmd += ["--reference-logits", str(Path(tmp) / f"{spec}.eager_logits.npy")]
                    cmd += [] if first else ["--latency-only"]
                    t0 = time.perf_counter()
                    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
                    if proc.returncode == 0 and row_file.is_file():
                        row = json.loads(row_file.read_text())
                    else:
                        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
                        row = {
                            "model": spec,
                            "backend": backend,
                            "error": tail[-1] if tail else f"exit {proc.returncode}",
                        }
                    if first:
                        row["wall_s"] = time.perf_counter() - t0
                        row["p50_runs"] = [row.get("latency_ms_p50")] if not row.get("error") else []
                        rows[spec, backend] = row
                    elif not row.get("error"):
                        rows[spec, backend]["p50_runs"].append(row["latency_ms_p50"])
                    brief = {k: row.get(k) for k in ("model", "backend", "latency_ms_p50", "miou", "error")}
                    print(json.dumps({"round": repeat + 1, **brief}), flush=True)
    rows_list = list(rows.values())
    for row in rows_list:
        runs = sorted(row.get("p50_runs") or [])
        if runs:  # the median of the rounds' medians, and how far the rounds spread around it
            row["latency_ms_p50_first_round"] = row["latency_ms_p50"]
            row["latency_ms_p50"] = statistics.median(runs)
            row["p50_spread_pct"] = 100 * (runs[-1] - runs[0]) / row["latency_ms_p50"]
    import torch

    header = (
        f"CPU {args.size[0]} x {args.size[1]}, batch 1, {args.threads} threads, torch {torch.__version__}; "
        f"command: python benchmarks/backends.py " + " ".join(sys.argv[1:])
    )
    text = header + "\n\n" + table(rows_list) + "\n"
    (out / "rows.json").write_text(json.dumps(rows_list, indent=2))
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
