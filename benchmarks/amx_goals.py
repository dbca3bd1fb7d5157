"""The goals table of issue 18 in one run, as Markdown for benchmarks/RESULTS.md (run it on an idle machine).

At one input size (default 520 x 520), batch 1 and a fixed number of threads (default 2): torchvision's eager fp32
network as the reference, every segbench backend of the same network (one fresh subprocess per case, as
``segbench benchmark``), the speed ratios against the reference, %peak against the peak of each backend's
precision (theoretical and the probe's measured GEMM, refreshed at the start), the mIoU of every backend on the
CamVid sample where segbench has CamVid weights of the network (delta against eager, in points, and whether it is
within the band of ``--backend best``), and where the time goes for the light networks: torch.profiler's per-op
table of eager PyTorch and OpenVINO's per-layer counters (bf16), aggregated by layer type.

    python benchmarks/amx_goals.py --output benchmarks/amx_goals.md            # the full run
    python benchmarks/amx_goals.py --size 64x64 --models lraspp_mobilenet_v3_large --backends eager onnxruntime \
        --quick --output /tmp/goals.md                                          # a smoke test, seconds
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from segbench.bench.backends import ALL_BACKENDS, prepare
from segbench.bench.latency import measure_latency
from segbench.bench.peak import probe_peaks
from segbench.bench.select import BAND_POINTS
from segbench.bench.sweep import sweep
from segbench.bench.table import format_probe

MODELS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50")
LIGHT = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fast_scnn")
GOALS = {"lraspp_mobilenet_v3_large": 8.0, "deeplabv3_mobilenet_v3_large": 8.0, "fcn_resnet50": 20.0}


def _f(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def torchvision_ms(name: str, size: tuple[int, int], latency: dict) -> float:
    """Median ms of torchvision's own network (random weights, 21 classes, no aux head), eager fp32."""
    import torchvision.models.segmentation as tvs

    net = getattr(tvs, name)(weights=None, weights_backbone=None).eval()
    plain = _Out(net)
    return measure_latency(plain, (1, 3, *size), **latency).latency_ms_p50


class _Out(torch.nn.Module):
    """torchvision's segmentation models return a dict; this returns its ``out`` logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def speed_section(models, backends, size, threads, latency, isolate: bool) -> tuple[list[str], list[dict]]:
    rows = sweep(list(models), backends=list(backends), sizes=[size], isolate=isolate, threads=threads, timeout_s=1800,
                 latency=latency, e2e=False, train_step=False, probe_peak=True)  # fmt: skip
    lines = ["| model | torchvision eager fp32 (ms) | backend | precision | p50 (ms) | x torchvision | GFLOP/s | "
             "%peak (theoretical) | %peak (probe) | goal |", "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for model in models:
        ref = torchvision_ms(model, size, latency)
        ok = [r for r in rows if r.get("model") == model and not r.get("error") and r.get("latency_ms_p50")]
        best = max((ref / r["latency_ms_p50"] for r in ok), default=None)
        for r in [r for r in rows if r.get("model") == model]:
            if r.get("error"):
                lines.append(f"| {model} | {ref:.2f} | {r.get('backend')} | - | error: {r['error'][:120]} | | | | | |")
                continue
            ratio = ref / r["latency_ms_p50"]
            goal = GOALS.get(model)
            mark = "" if goal is None or ratio != best else (f"best, goal {goal:g}x: " + ("met" if ratio >= goal else "not met"))
            pct = [None if r.get(k) is None else 100 * r[k] for k in ("peak_fraction", "probe_fraction")]
            lines.append(f"| {model} | {ref:.2f} | {r['backend']} | {r.get('peak_precision')} | {r['latency_ms_p50']:.2f} | "
                         f"{ratio:.2f} | {_f(r.get('achieved_gflop_s'), '.1f')} | {_f(pct[0], '.1f')} | {_f(pct[1], '.1f')} | {mark} |")  # fmt: skip
    return lines, rows


def accuracy_section(models, backends, max_images: int) -> list[str]:
    """mIoU on the CamVid sample of every backend, for the networks with CamVid weights."""
    from segbench.data.datasets import open_dataset, sample_dir
    from segbench.engine.evaluate import evaluate
    from segbench.export import sample_calibration
    from segbench.models import load_model
    from segbench.models.weights import zoo_tags

    lines = ["| weights | backend | sample mIoU (%) | delta vs eager (points) | band | within |",
             "| --- | --- | ---: | ---: | ---: | --- |"]  # fmt: skip
    dataset = open_dataset(sample_dir(), "val")
    for model in models:
        if "camvid" not in zoo_tags().get(model, ()):
            lines.append(f"| {model} | - | no CamVid weights in segbench | | | |")
            continue
        loaded = load_model(f"{model}.camvid")
        info, eager = loaded.info, None
        calib = sample_calibration(info.preprocessing)
        for backend in backends:
            try:
                runner = loaded.model if backend == "eager" else prepare(loaded.model, backend, calib[0], "cpu", calib)
                res = evaluate(runner, dataset, info.num_classes, info.preprocessing, device="cpu",
                               max_images=max_images, progress=False)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one backend failing leaves a row
                lines.append(f"| {model}.camvid | {backend} | error: {str(exc).splitlines()[0][:120]} | | | |")
                continue
            miou = 100 * res.metrics.miou
            eager = miou if backend == "eager" else eager
            delta = None if eager is None else miou - eager
            band = 0.0 if backend == "eager" else BAND_POINTS["int8" if backend.endswith("int8") else "bf16"]
            within = "-" if delta is None else ("yes" if -delta <= band else "no")
            lines.append(f"| {model}.camvid | {backend} | {miou:.2f} | {_f(delta)} | {band:g} | {within} |")
    return lines


def torch_profile(model: str, size, iters: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    from segbench.models import build_model

    net = build_model(model, num_classes=11).eval()
    x = torch.randn(1, 3, *size)
    with torch.inference_mode():
        net(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iters):
                net(x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def openvino_layers(model: str, size, threads: int, iters: int) -> list[str]:
    """OpenVINO's per-layer counters (``PERF_COUNT``) of the bf16 model, summed by layer type over ``iters``."""
    import tempfile

    import openvino as ov

    from segbench.export import export_onnx
    from segbench.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(build_model(model, num_classes=11).eval(), Path(tmp) / "m.onnx", torch.randn(1, 3, *size))
        core = ov.Core()
        ov_model = core.read_model(str(path))
        ov_model.reshape({ov_model.input(0).get_any_name(): [1, 3, *size]})
        compiled = core.compile_model(ov_model, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "bf16",
                                                          "INFERENCE_NUM_THREADS": threads})  # fmt: skip
        request = compiled.create_infer_request()
        x = torch.randn(1, 3, *size).numpy()
        request.infer({0: x})
        by_type: dict[tuple[str, str], list[float]] = {}
        for _ in range(iters):
            request.infer({0: x})
            for p in request.profiling_info:
                if p.status == p.Status.EXECUTED:
                    entry = by_type.setdefault((p.node_type, p.exec_type), [0.0, 0])
                    entry[0] += p.real_time.total_seconds() * 1e3 / iters
                    entry[1] += 1 / iters
    total = sum(v[0] for v in by_type.values()) or 1.0
    lines = ["| layer type | kernel | layers | ms per inference | share (%) |", "| --- | --- | ---: | ---: | ---: |"]
    for (kind, kernel), (ms, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:15]:
        lines.append(f"| {kind} | {kernel} | {n:.0f} | {ms:.3f} | {100 * ms / total:.1f} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--backends", nargs="+", default=list(ALL_BACKENDS))
    ap.add_argument("--size", default="520x520", help="HxW (default 520x520)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=2.0, help="minimum timed seconds per case")
    ap.add_argument("--budget", type=float, default=30.0, help="maximum timed seconds per case")
    ap.add_argument("--max-images", type=int, default=0, help="sample images for the mIoU (0 = all)")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny timing budgets, in this process")
    ap.add_argument("--output", required=True, help="Markdown file to write")
    args = ap.parse_args(argv)
    h, w = (int(s) for s in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    latency = {"min_time_s": args.min_time, "budget_s": args.budget, "warmup_s": 1.0}
    if args.quick:
        latency = {"min_time_s": 0.05, "budget_s": 0.1, "warmup_s": 0.0, "warmup": 1, "min_iters": 3}
    t0 = time.perf_counter()
    probe = probe_peaks("cpu", args.threads, refresh=True, n=256 if args.quick else None)
    speed, _ = speed_section(args.models, args.backends, (h, w), args.threads, latency, isolate=not args.quick)
    out = [f"### AMX goals: {h} x {w}, batch 1, {args.threads} threads ({time.strftime('%Y-%m-%d')})", "",
           f"Command: `python benchmarks/amx_goals.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
           "```", format_probe(probe), "```", "", *speed, "",
           f"mIoU on the CamVid sample shipped with segbench (bands of `--backend best`: {BAND_POINTS}):", "",
           *accuracy_section(args.models, args.backends, 2 if args.quick else args.max_images)]  # fmt: skip
    for model in [m for m in args.models if m in LIGHT]:
        out += ["", f"#### Where the time goes: {model}, eager PyTorch fp32 (torch.profiler, self CPU time)", "",
                "```", torch_profile(model, (h, w), 2 if args.quick else 10), "```"]  # fmt: skip
        try:
            layers = openvino_layers(model, (h, w), args.threads, 2 if args.quick else 20)
            out += ["", f"OpenVINO bf16 per-layer counters of {model} (PERF_COUNT), by layer type:", "", *layers]
        except Exception as exc:  # noqa: BLE001 - no openvino extra
            out += ["", f"OpenVINO per-layer counters not available: {str(exc).splitlines()[0]}"]
    out += ["", f"(run took {time.perf_counter() - t0:.0f} s)", ""]
    path = Path(args.output)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(out), encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
