"""segbench: build, train, evaluate and compare semantic segmentation networks.

Commands: models, train, curves, evaluate, predict, benchmark, compare, export. Exit code 0 on success, 2 on bad
input (one line naming the file or option and what was expected).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from segbench.errors import UserError


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.2f}"


def _check_new_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise UserError(f"{path}: folder exists and is not empty; choose another --output or pass --overwrite")


def _inference_config(args, info=None):
    """InferenceConfig from --mode/--window/--stride/--gaussian/--tta-scales/--tta-flip/--memory-budget, with
    the window resolved for the model (its training crop size when known)."""
    from segbench.engine.inference import InferenceConfig

    cfg = InferenceConfig(
        mode=args.mode, window=tuple(args.window) if args.window else None,
        stride=tuple(args.stride) if args.stride else None, gaussian=args.gaussian,
        scales=tuple(args.tta_scales) if args.tta_scales else (1.0,), flip=args.tta_flip,
        memory_budget_mib=args.memory_budget,
    )
    return cfg.for_model(info) if info is not None else cfg


def _crf_config(args):
    """CRFConfig from --crf/--crf-iterations/--crf-param, or None without --crf.

    Raises:
        UserError: --crf-* options without --crf, bad values, or pydensecrf2 missing.
    """
    from segbench.engine.crf import CRFConfig, require_crf

    if not args.crf:
        if args.crf_param or args.crf_iterations is not None:
            raise UserError("--crf-param/--crf-iterations: given without --crf")
        return None
    cfg = CRFConfig.from_overrides(args.crf_param, args.crf_iterations)
    require_crf()
    return cfg


def _backend_runner(args, loaded, device: str, image=None):
    """The model itself for ``--backend eager``, else a :class:`segbench.bench.backends.Predictor` running it
    with ``--backend`` (prepared on ``image``, an ``(H, W, 3)`` uint8 array, or a 360 x 480 random input;
    the int8 backends calibrated on ``--calibration`` images, default the shipped sample).

    Raises:
        UserError: unknown backend; BackendUnavailable (missing package, device); ExportError.
    """
    if args.backend == "eager":
        return loaded.model
    import torch

    from segbench.bench.backends import prepare
    from segbench.data.transforms import preprocess
    from segbench.export import sample_calibration

    info = loaded.info
    example = preprocess(image, info.mean, info.std) if image is not None else torch.randn(1, 3, 360, 480)
    calibration = None
    if args.backend.endswith("_int8"):
        calibration = sample_calibration(info.mean, info.std, folder=args.calibration)
    runner = prepare(loaded.model, args.backend, example, device, calibration)
    print(f"backend {args.backend}: {runner.notes}", file=sys.stderr)
    return runner


def _check_backend_args(args) -> None:
    from segbench.bench.backends import check_backend

    backends = args.backend if isinstance(args.backend, list) else [args.backend]
    for b in backends:
        check_backend(b)
    if args.calibration and not any(b.endswith("_int8") for b in backends):
        raise UserError("--calibration: only with an int8 --backend (onnxruntime_int8, openvino_int8)")


def cmd_models(args) -> int:
    from segbench.bench import count_params
    from segbench.models import available_weights, build_model, list_models

    print(f"{'model':32s} {'params (M)':>10s}  weights")
    for name in list_models():
        params = count_params(build_model(name, num_classes=args.num_classes)) / 1e6
        tags = ", ".join(f"{name}.{t}" for t in available_weights(name)) or "-"
        print(f"{name:32s} {params:10.2f}  {tags}")
    print(f"\nparameters at {args.num_classes} classes, without auxiliary heads")
    return 0


def cmd_train(args) -> int:
    from segbench.config import load_config
    from segbench.engine.train import train

    cfg = load_config(args.recipe, args.set or [])
    summary = train(cfg, resume=args.resume, progress=not args.quiet)
    if summary["rank"] != 0:  # a torchrun launch: rank 0 reports for all processes
        return 0
    speed = ""
    if summary["img_s"] is not None:
        speed = f"; {summary['img_s']:.1f} img/s, {summary['data_wait_pct']:.1f}% of step time waiting for data"
    print(
        f"best val mIoU {summary['best_miou'] * 100:.2f} after {summary['iters']} iterations, "
        f"{summary['elapsed_s'] / 60:.1f} min{speed}; checkpoints in {summary['out_dir']}"
    )
    return 0


def cmd_curves(args) -> int:
    from segbench.report import plot_curves

    summary = plot_curves(args.runs, args.output, overwrite=args.overwrite)
    for label, counts in summary.items():
        print(f"{label}: {counts['miou_points']} mIoU points, {counts['loss_points']} loss points")
    print(f"wrote {args.output}")
    return 0


def _print_skipped(skipped: list[dict]) -> None:
    for s in skipped:
        reason = s["reason"] if s["reason"].startswith(s["file"]) else f"{s['file']}: {s['reason']}"
        print(f"skipped {reason}", file=sys.stderr)


def _print_variants(variants: list[dict], inference, crf) -> None:
    """The plain -> +TTA -> +CRF table of evaluate: mIoU and milliseconds per image of each step."""
    print(f"inference: {inference.describe()}" + (f"; {crf.describe()}" if crf else ""))
    if len(variants) < 2:
        return
    print(f"{'step':10s} {'mIoU %':>7s} {'ms/img':>9s} {'extra ms':>9s}")
    for v in variants:
        extra = v.get("extra_ms_per_image")
        print(f"{v['name']:10s} {_pct(v.get('miou')):>7s} {_fmt(v.get('ms_per_image'), '.1f'):>9s} "
              f"{'-' if v['name'] == 'plain' else _fmt(extra, '+.1f'):>9s}")
    print("ms/img: wall-clock time per image to produce that label map (model, TTA, CRF; not decoding); "
          "extra ms: over plain.")


def cmd_evaluate(args) -> int:
    from segbench.compare import check_device
    from segbench.data.datasets import open_dataset
    from segbench.data.io import write_bytes_atomic
    from segbench.engine.evaluate import evaluate
    from segbench.models import load_model

    device = check_device(args.device)
    _inference_config(args)  # bad options fail before any work
    _check_backend_args(args)
    crf = _crf_config(args)
    dataset = open_dataset(args.data, args.split)
    if not dataset.labelled:
        raise UserError(f"{args.data}: split {args.split!r} has no labels to evaluate against")
    if args.output:
        _check_new_dir(Path(args.output), args.overwrite)
    loaded = load_model(args.model, weights=args.weights)
    info = loaded.info
    if list(info.class_names) != list(dataset.class_set.names):
        raise UserError(
            f"{args.model}: predicts {info.num_classes} classes ({', '.join(info.class_names[:3])}, ...) but "
            f"{args.data} has {dataset.class_set.num_classes} ({', '.join(dataset.class_set.names[:3])}, ...)"
        )
    inference = _inference_config(args, info)
    first = next((dataset[i] for i in range(len(dataset)) if "error" not in dataset[i]), None)
    runner = _backend_runner(args, loaded, device, first["image"] if first else None)
    t0 = time.perf_counter()
    res = evaluate(runner, dataset, info.num_classes, info.mean, info.std, device,
                   max_images=args.max_images, progress=not args.quiet, desc=info.name,
                   inference=inference, crf=crf)
    seconds = time.perf_counter() - t0
    _print_skipped(res.skipped)
    if res.metrics is None or res.num_images == 0:
        raise UserError(f"{args.data}: no image could be evaluated ({len(res.skipped)} skipped)")
    m = res.metrics.to_dict(list(info.class_names))
    out = {
        "model": info.name, "weights": info.weights, "backend": args.backend,
        "backend_notes": getattr(runner, "notes", "PyTorch eager, fp32"), "data": str(args.data), "split": args.split,
        "num_images": res.num_images, "seconds": seconds, "throughput_img_s": res.num_images / seconds,
        **m, "skipped": res.skipped,
        "inference": inference.to_dict(), "crf": crf.to_dict() if crf else None,
        "variants": res.variants_dicts(list(info.class_names)),
    }
    if args.output:
        folder = Path(args.output)
        write_bytes_atomic(folder / "metrics.json", json.dumps(out, indent=2).encode())
        header = "target\\pred," + ",".join(info.class_names) + "\n"
        body = "".join(f"{n}," + ",".join(map(str, r)) + "\n" for n, r in zip(info.class_names, m["confusion"]))
        write_bytes_atomic(folder / "confusion_matrix.csv", (header + body).encode())
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{info.name}{'' if args.backend == 'eager' else f' ({args.backend})'} on {args.data} "
          f"({args.split}, {res.num_images} images, {seconds:.1f} s, "
          f"{res.num_images / seconds:.1f} img/s with image loading overlapped)")
    print(f"{'class':16s} {'IoU %':>7s} {'acc %':>7s}")
    for name in info.class_names:
        print(f"{name:16s} {_pct(m['iou'][name]):>7s} {_pct(m['accuracy'][name]):>7s}")
    print(f"{'mIoU':16s} {_pct(m['miou']):>7s}")
    print(f"pixel accuracy {_pct(m['pixel_accuracy'])} %, mean class accuracy {_pct(m['mean_accuracy'])} %")
    print("IoU is NaN ('-') for a class absent from both labels and predictions; such classes are left out of mIoU.")
    _print_variants(out["variants"], inference, crf)
    if args.output:
        print(f"wrote {Path(args.output) / 'metrics.json'} and confusion_matrix.csv")
    return 0


def cmd_predict(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from segbench.classes import colorize
    from segbench.compare import check_device
    from segbench.data.datasets import images as image_dataset
    from segbench.data.io import label_image, save_png, write_bytes_atomic
    from segbench.engine.crf import dense_crf
    from segbench.engine.inference import predict_label, predict_probs
    from segbench.models import load_model

    device = check_device(args.device)
    _inference_config(args)  # bad options fail before any work
    _check_backend_args(args)
    crf = _crf_config(args)
    dataset = image_dataset(args.images)
    if not len(dataset):
        raise UserError(f"{' '.join(args.images)}: no images found")
    out = Path(args.output)
    by_stem: dict[str, Path] = {}
    for p, _ in dataset.pairs:
        if p.stem in by_stem:
            raise UserError(f"{p} and {by_stem[p.stem]} would write the same outputs ({p.stem}_label.png); rename one")
        by_stem[p.stem] = p
    kinds = ["label.png", "overlay.png"] + (["confidence.png"] if args.confidence else []) + ["classes.json"]
    targets = [{k: out / f"{p.stem}_{k}" for k in kinds} for p, _ in dataset.pairs]
    existing = [str(t) for paths in targets for t in paths.values() if t.exists()]
    if existing and not args.overwrite:
        raise UserError(f"{existing[0]}: exists (and {len(existing) - 1} more); pass --overwrite to replace them")
    loaded = load_model(args.model, weights=args.weights)
    info = loaded.info
    inference = _inference_config(args, info)
    loaded.model.eval().to(device)
    first = next((dataset[i] for i in range(len(dataset)) if "error" not in dataset[i]), None)
    runner = _backend_runner(args, loaded, device, first["image"] if first else None)
    skipped, done = [], 0
    for i, paths in enumerate(targets):
        item = dataset[i]
        if "error" in item:
            skipped.append({"file": item["path"], "reason": item["error"]})
            continue
        image = item["image"]
        if crf is None:  # large photos are finished band by band (bounded memory) when sliding without TTA
            mask, conf = predict_label(runner, image, info.mean, info.std, inference, device)
        else:
            probs = predict_probs(runner, image, info.mean, info.std, inference, device)
            probs = torch.from_numpy(dense_crf(image, probs, crf)).unsqueeze(0)
            conf, mask = (t[0].cpu().numpy() for t in probs.max(1))
            del probs
        save_png(paths["label.png"], label_image(mask, info.palette))
        overlay = Image.blend(Image.fromarray(image), Image.fromarray(colorize(mask, info.palette)), args.alpha)
        save_png(paths["overlay.png"], overlay)
        del overlay
        if args.confidence:
            save_png(paths["confidence.png"], Image.fromarray(np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8)))
        present = np.bincount(mask.ravel(), minlength=info.num_classes)
        fractions = {name: float(present[c]) / mask.size for c, name in enumerate(info.class_names)}
        summary = {
            "image": item["path"], "model": info.name, "backend": args.backend,
            "height": int(mask.shape[0]), "width": int(mask.shape[1]),
            "inference": inference.to_dict(), "crf": crf.to_dict() if crf else None,
            "mean_confidence": float(conf.mean()), "class_fractions": fractions,
        }
        write_bytes_atomic(paths["classes.json"], (json.dumps(summary, indent=2) + "\n").encode())
        done += 1
        if not args.quiet:
            top = [info.class_names[c] for c in np.argsort(-present)[:3] if present[c]]
            print(f"{item['path']} -> {', '.join(p.name for p in paths.values())} ({', '.join(top)})")
    _print_skipped(skipped)
    print(f"{done} images segmented into {out}" + (f", {len(skipped)} skipped" if skipped else "")
          + f" ({inference.describe()}" + (f"; {crf.describe()})" if crf else ")"))
    if skipped:
        write_bytes_atomic(out / "skipped.txt", "".join(f"{s['file']}\t{s['reason']}\n" for s in skipped).encode())
    return 0


def _json_safe(value):
    """NaN and infinities -> None, recursively, so the file is strict JSON."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def cmd_benchmark(args) -> int:
    from segbench.bench.backends import BACKENDS
    from segbench.bench.sweep import sweep
    from segbench.bench.table import check_specs, format_table, parse_sizes
    from segbench.compare import check_device
    from segbench.data.io import write_bytes_atomic

    device = check_device(args.device)
    sizes = parse_sizes(args.size)
    known = BACKENDS
    for b in args.backend:
        if b not in known:
            raise UserError(f"--backend {b}: unknown backend; choose from {', '.join(known)}")
    for opt in ("min_time", "budget", "rel_ci", "timeout"):
        if getattr(args, opt) <= 0:
            raise UserError(f"--{opt.replace('_', '-')} must be a positive number, got {getattr(args, opt)}")
    out_file = Path(args.output) / "benchmark.json" if args.output else None
    if out_file is not None and out_file.exists() and not args.overwrite:
        raise UserError(f"{out_file}: exists; choose another --output or pass --overwrite")
    if args.data and not Path(args.data).exists():
        raise UserError(f"--data {args.data}: no such file or folder")
    bad = check_specs(args.models)
    if len(bad) == len(args.models):
        raise UserError(next(iter(bad.values())))
    models = [m for m in args.models if m not in bad]
    if args.warmup_time < 0:
        raise UserError(f"--warmup-time must be >= 0, got {args.warmup_time}")
    latency = {"min_time_s": args.min_time, "budget_s": args.budget, "rel_ci": args.rel_ci, "warmup_s": args.warmup_time}
    rows = [{"model": m, "error": e, "error_kind": "user"} for m, e in bad.items()]

    def on_row(row, i, total):
        if out_file is not None:  # partial results survive an interrupted sweep
            write_bytes_atomic(out_file, json.dumps(_json_safe(rows + [row]), indent=2, default=str).encode())
        rows.append(row)
        if not args.quiet:
            what = f"{row.get('model')} {row.get('backend')} batch {row.get('batch')} {'x'.join(map(str, row.get('input_size') or []))}"
            result = f"error: {row['error']}" if row.get("error") else f"p50 {row['latency_ms_p50']:.2f} ms"
            took = f" ({row['worker_s']:.1f} s)" if row.get("worker_s") is not None else ""
            print(f"[{i + 1}/{total}] {what}: {result}{took}", file=sys.stderr, flush=True)

    sweep(
        models, backends=args.backend, batches=args.batch, sizes=sizes, isolate=not args.no_isolate,
        timeout_s=args.timeout, on_row=on_row, device=device, threads=args.threads, weights=args.weights,
        latency=latency, data=args.data, e2e=not args.no_e2e, train_step=not args.no_train_step,
        cudnn_benchmark=args.cudnn_benchmark, measure_peak=args.measure_peak,
    )  # fmt: skip
    if rows and all(r.get("error_kind") == "user" for r in rows) and len(rows) == 1:
        raise UserError(rows[0]["error"])
    print(f"device {device}; " + ("each case in a fresh subprocess" if not args.no_isolate else "all cases in this process"))
    print(format_table(rows))
    ok = [r for r in rows if not r.get("error")]
    if ok:
        r0, env = ok[0], ok[0].get("env") or {}
        where = env.get("cuda_device") if str(device).startswith("cuda") else env.get("cpu")
        print(f"p50/p90: median/90th percentile ms per batch; CI%: half-width of the 95% interval of the median "
              f"(order statistics) relative to it, * = not within --rel-ci {args.rel_ci:g} when the budget of "
              f"{args.budget:g} s ran out")
        print(f"GFLOP/s: FLOPs (torch.utils.flop_counter, 1 multiply-add = 2 FLOPs) x batch / p50; %peak against "
              f"the fp32 peak, {r0.get('peak_kind')}: {r0.get('peak_formula')}")
        base = r0.get("rss_before_model_mib")
        print(f"mem: {r0.get('memory_kind')} during one forward; RSS: peak resident set of the measuring process "
              f"(ru_maxrss) before the training step, {_fmt(base, '.0f')} MiB of it before the model was loaded "
              f"(Python, torch, segbench); train: {r0.get('train_memory_kind') or '-'} of one training step "
              f"(forward, cross-entropy, backward, SGD) at batch max(batch, 2), eager only")
        print(f"e2e: decode + preprocess + model + postprocess per image (batch-1 cases), on "
              f"{args.data or 'the CamVid sample'}; mIoU on those images when their classes are the model's")
        print(f"torch {env.get('torch')}, {env.get('threads')} threads, cudnn.benchmark {env.get('cudnn_benchmark')}, {where}")
    if any(r.get("weights") == "none" for r in rows):
        print("weights 'none': random initialisation (speed, size and memory do not depend on the weight values)")
    _print_busy_warning(rows)
    if out_file is not None:
        write_bytes_atomic(out_file, json.dumps(_json_safe(rows), indent=2, default=str).encode())
        print(f"wrote {out_file}")
    return 0


def _print_busy_warning(rows: list[dict]) -> None:
    from segbench.bench.env import busy_warning

    line = busy_warning(rows)
    if line:
        print(line, file=sys.stderr)


def cmd_compare(args) -> int:
    from segbench.compare import compare, zoo_models
    from segbench.data.datasets import sample_dir

    models = args.models or zoo_models()
    if not models:
        raise UserError("no models given and no shipped models found in segbench/zoo")
    data = args.data or sample_dir()
    _check_backend_args(args)
    inference, crf = _inference_config(args), _crf_config(args)
    out = Path(args.output or time.strftime("reports/compare-%Y%m%d-%H%M%S"))
    _check_new_dir(out, args.overwrite)
    print(f"comparing {', '.join(models)} on {data}")
    result = compare(
        models, data, out, split=args.split, weights=args.weights, input_size=tuple(args.size) if args.size else None,
        batch=args.batch, device=args.device, threads=args.threads, max_images=args.max_images,
        grid_images=args.grid, min_time_s=args.min_time, progress=not args.quiet, inference=inference, crf=crf,
        backends=args.backend, calibration=args.calibration, isolate=not args.in_process,
    )
    several = args.backend != ["eager"]
    for r in result["rows"]:
        name = r["model"] + (f" ({r['backend']})" if several and r.get("backend") else "")
        if r.get("error"):
            print(f"{name:34s} error: {r['error']}")
        else:
            agree = "" if r.get("agreement_miou") is None else f"  agreement mIoU {_pct(r['agreement_miou'])}"
            print(f"{name:34s} mIoU {_pct(r.get('miou')):>6s}  p50 {_fmt(r.get('latency_ms_p50')):>8s} ms  "
                  f"{_fmt(r.get('params_m'))} M params  {_fmt(r.get('gflops'))} GFLOPs{agree}")
            for v in r.get("variants", [])[1:]:
                print(f"{'':34s}   {v['name']}: mIoU {_pct(v.get('miou'))} (plain {_pct(r['variants'][0].get('miou'))}), "
                      f"{_fmt(v.get('extra_ms_per_image'), '+.1f')} ms/image")
    _print_skipped(result["skipped"])
    _print_busy_warning(result["rows"])
    print(f"report: {result['files']['report_html']} (and report.md, results.json, results.csv)")
    return 0


def cmd_export(args) -> int:
    import torch

    from segbench.engine.checkpoint import save_safetensors
    from segbench.models import load_model

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: exists; pass --overwrite to replace it")
    if args.format != "onnx":
        onnx_only = [f"--{k.replace('_', '-')}" for k in ("int8", "calibration", "data", "exporter", "opset")
                     if getattr(args, k) not in (None, False)]
        if onnx_only:
            raise UserError(f"{', '.join(onnx_only)}: only with --format onnx")
    loaded = load_model(args.model, weights=args.weights)
    info = loaded.info
    model = loaded.model
    if not args.keep_aux:  # inference-only file: the auxiliary head is a training aid
        for name in ("aux_head", "aux_classifier"):
            if getattr(model, name, None) is not None:
                setattr(model, name, None)
    if args.format == "onnx":
        from segbench.export import export_checked

        export_checked(
            model, info, out, int8=args.int8, data=args.data, split=args.split, max_images=args.max_images,
            calibration=args.calibration, exporter=args.exporter or "dynamo", opset=args.opset, atol=args.atol,
            max_miou_drop=args.max_miou_drop, overwrite=args.overwrite,
        )
        return 0
    meta = {"arch": info.arch, "num_classes": info.num_classes, "class_names": info.class_names,
            "palette": [list(c) for c in info.palette], "mean": list(info.mean), "std": list(info.std)}
    for key in ("iteration", "val", "config"):
        if key in info.meta:
            meta[key] = info.meta[key]
    size = save_safetensors(model, meta, out, torch.float16 if args.dtype == "fp16" else torch.float32)
    print(f"wrote {out} ({size / 1e6:.2f} MB, {args.dtype})")
    return 0


def _size(values):
    return [int(v) for v in values]


def _scales(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,1.0,1.5, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one scale")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(sp, weights_help="a tag, a weights file, or 'none' (random initialisation)"):
        sp.add_argument("--weights", help=weights_help)
        sp.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")

    backend_names = ("eager, channels_last, bf16, compile, onnxruntime, onnxruntime_int8, openvino, openvino_bf16, "
                     "openvino_int8")

    def backend_args(sp, several: bool = False):
        g = sp.add_argument_group("backend (how the network runs; see segbench.bench.backends)")
        if several:
            g.add_argument("--backend", nargs="+", default=["eager"], metavar="B",
                           help=f"one row per (model, backend), each with its accuracy beside its speed, and the "
                                f"agreement with the first backend's predictions; from: {backend_names} "
                                "(default eager)")
        else:
            g.add_argument("--backend", default="eager", metavar="B", help=f"one of {backend_names} (default eager)")
        g.add_argument("--calibration", metavar="DIR",
                       help="images calibrating the int8 backends (default: the CamVid val sample shipped with segbench)")

    def inference_args(sp):
        g = sp.add_argument_group("inference (sliding window, test-time augmentation, dense CRF)")
        g.add_argument("--mode", choices=["whole", "slide", "auto"], default="whole",
                       help="whole image (default), sliding window, or auto: slide when the image exceeds 2x the "
                            "window per side or whole-image inference would need more than --memory-budget")
        g.add_argument("--window", nargs=2, type=int, metavar=("H", "W"),
                       help="sliding-window size in pixels (default: the model's training crop size, else 512 512)")
        g.add_argument("--stride", nargs=2, type=int, metavar=("H", "W"),
                       help="step between windows in pixels, at most the window (default: 2/3 of the window)")
        g.add_argument("--gaussian", action="store_true", help="Gaussian-weighted averaging of overlapping windows")
        g.add_argument("--memory-budget", type=float, default=2048.0, metavar="MiB",
                       help="auto mode: slide when whole-image inference is predicted to exceed this (default 2048)")
        g.add_argument("--tta-scales", type=_scales, metavar="S[,S...]",
                       help="test-time augmentation scales, e.g. 0.5,0.75,1.0,1.25,1.5,1.75 (probabilities averaged)")
        g.add_argument("--tta-flip", action="store_true", help="test-time augmentation with left-right flips")
        g.add_argument("--crf", action="store_true",
                       help="dense CRF post-processing (arXiv 1210.5644; needs: pip install 'segbench[crf]')")
        g.add_argument("--crf-iterations", type=int, metavar="N", help="mean-field iterations (default 10)")
        g.add_argument("--crf-param", action="append", metavar="NAME=VALUE",
                       help="CRF parameter: smooth_weight, smooth_sxy, appearance_weight, appearance_sxy, "
                            "appearance_srgb (defaults: DeepLab's 3, 1, 4, 67, 3)")

    m = sub.add_parser("models", help="list the networks, their parameters and weights tags")
    m.add_argument("--num-classes", type=int, default=21, help="classes for the parameter count (default 21)")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser(
        "train",
        help="train a network from a YAML recipe",
        description="Train a network from a YAML recipe. Several processes: "
        "torchrun --standalone --nproc_per_node N -m segbench.cli train RECIPE (gloo on CPU, NCCL on CUDA; "
        "batch_size is the global batch).",
    )
    t.add_argument("recipe", help="YAML recipe (see configs/)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key, e.g. optim.lr=0.01")
    t.add_argument("--resume", action="store_true", help="continue the run in out_dir from last.pt")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    cv = sub.add_parser("curves", help="plot validation mIoU and training loss of several runs in one figure")
    cv.add_argument("runs", nargs="+", metavar="RUN_DIR", help="segbench train output folders (with metrics.csv)")
    cv.add_argument("--output", required=True, help="PNG file to write")
    cv.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    cv.set_defaults(func=cmd_curves)

    e = sub.add_parser("evaluate", help="pixel accuracy, per-class IoU and mIoU on a labelled split")
    e.add_argument("model", help="ARCH.TAG (e.g. fast_scnn.camvid), ARCH with --weights, or a checkpoint path")
    e.add_argument("--data", required=True, help="dataset folder (CamVid layout or images/ + masks/)")
    e.add_argument("--split", default="val")
    e.add_argument("--max-images", type=int, default=0, help="evaluate the first N images only (0 = all)")
    e.add_argument("--output", help="folder for metrics.json and confusion_matrix.csv")
    e.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --output")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    inference_args(e)
    backend_args(e)
    model_args(e)
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="label PNG and overlay PNG for each image")
    pr.add_argument("model", help="ARCH.TAG, ARCH with --weights, or a checkpoint path")
    pr.add_argument("images", nargs="+", help="image files and/or folders")
    pr.add_argument("--output", default="predictions", help="output folder (default ./predictions)")
    pr.add_argument("--overwrite", action="store_true", help="replace existing output files")
    pr.add_argument("--alpha", type=float, default=0.5, help="mask opacity in the overlay (0..1)")
    pr.add_argument("--confidence", action="store_true",
                    help="also write STEM_confidence.png: the max softmax probability per pixel (0..255 = 0..1)")
    pr.add_argument("--quiet", action="store_true")
    inference_args(pr)
    backend_args(pr)
    model_args(pr)
    pr.set_defaults(func=cmd_predict)

    b = sub.add_parser("benchmark", help="latency, throughput, memory, size, GFLOPs and end-to-end time; sweeps")
    b.add_argument("models", nargs="+", help="ARCH (random weights: speed and size do not depend on them) or ARCH.TAG")
    b.add_argument("--backend", nargs="+", default=["eager"], metavar="B",
                   help="backends to run (default eager): eager, channels_last, bf16, compile, onnxruntime, "
                   "onnxruntime_int8, openvino, openvino_bf16, openvino_int8")
    b.add_argument("--size", nargs="+", default=["520x520"], metavar="HxW",
                   help="input sizes, e.g. 360x480 520x520 (default 520x520); the form --size H W also works")
    b.add_argument("--batch", nargs="+", type=int, default=[1], help="batch sizes, e.g. 1 4 (default 1)")
    b.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    b.add_argument("--min-time", type=float, default=1.0, help="minimum timed seconds per case (default 1)")
    b.add_argument("--warmup-time", type=float, default=1.0, help="minimum untimed seconds per case (default 1)")
    b.add_argument("--budget", type=float, default=30.0,
                   help="maximum timed seconds per case if the median is not yet stable (default 30)")
    b.add_argument("--rel-ci", type=float, default=0.02,
                   help="stop when the 95%% interval of the median is within this fraction of it (default 0.02)")
    b.add_argument("--timeout", type=float, default=900.0, help="seconds before a case's subprocess is killed (default 900)")
    b.add_argument("--no-isolate", action="store_true",
                   help="run every case in this process (faster start; later models can be affected by earlier ones)")
    b.add_argument("--data", help="images for the end-to-end time and calibration (default: the CamVid sample)")
    b.add_argument("--no-e2e", action="store_true", help="skip the end-to-end time per image")
    b.add_argument("--no-train-step", action="store_true", help="skip the memory of one training step")
    b.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark (recorded either way)")
    b.add_argument("--measure-peak", action="store_true", help="also measure a large fp32 matmul on CPU")
    b.add_argument("--output", help="folder for benchmark.json")
    b.add_argument("--overwrite", action="store_true", help="replace an existing benchmark.json")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    model_args(b, "weights for bare ARCH names (default 'none': random initialisation, stated in the output)")
    b.set_defaults(func=cmd_benchmark)

    c = sub.add_parser("compare", help="the main job: models side by side on the same images, one report")
    c.add_argument("models", nargs="*", help="models to compare (default: every model shipped in segbench's zoo)")
    c.add_argument("--data", help="dataset folder or folder of images (default: the CamVid sample shipped with segbench)")
    c.add_argument("--split", default="val")
    c.add_argument("--output", help="report folder (default reports/compare-DATE-TIME)")
    c.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --output")
    c.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="benchmark input size (default: the first image's)")
    c.add_argument("--batch", type=int, default=1, help="benchmark batch size")
    c.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    c.add_argument("--max-images", type=int, default=0, help="evaluate on the first N images only (0 = all)")
    c.add_argument("--grid", type=int, default=4, help="images shown side by side (default 4)")
    c.add_argument("--min-time", type=float, default=2.0, help="minimum timed seconds per latency measurement")
    c.add_argument("--in-process", action="store_true",
                   help="time the models in this process instead of a fresh subprocess per (model, backend)")
    c.add_argument("--quiet", action="store_true")
    inference_args(c)
    backend_args(c, several=True)
    model_args(c, "weights for bare ARCH names: a tag, a file, or 'none'")
    c.set_defaults(func=cmd_compare)

    x = sub.add_parser(
        "export", help="write a model as a small safetensors file, or as ONNX checked against PyTorch",
        description="--format safetensors (default): the weights and metadata, fp16 or fp32. --format onnx: an "
        "ONNX model with dynamic batch, height and width, written only after its logits and mIoU were checked "
        "against PyTorch's on sample images (numbers printed and stored in the file's metadata_props); "
        "needs pip install 'segbench[onnx]'.",
    )
    x.add_argument("model", help="checkpoint path, ARCH.TAG, or ARCH with --weights")
    x.add_argument("--output", required=True, help="output file (.safetensors, or .onnx with --format onnx)")
    x.add_argument("--format", choices=["safetensors", "onnx"], default="safetensors",
                   help="file format (default safetensors)")
    x.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16", help="safetensors weights dtype")
    g = x.add_argument_group("ONNX (--format onnx)")
    g.add_argument("--int8", action="store_true",
                   help="write an int8 model (ONNX Runtime static quantisation, QDQ, per-channel weights)")
    g.add_argument("--calibration", metavar="DIR",
                   help="images calibrating the int8 ranges (default: the CamVid val sample shipped with segbench)")
    g.add_argument("--data", help="dataset or image folder the check runs on (default: the shipped CamVid val sample)")
    g.add_argument("--split", default="val", help="split of --data (default val)")
    g.add_argument("--max-images", type=int, default=8, help="images checked (default 8)")
    g.add_argument("--atol", type=float, default=1e-3,
                   help="largest allowed |logits difference| of the fp32 model (default 1e-3)")
    g.add_argument("--max-miou-drop", type=float, metavar="POINTS",
                   help="largest allowed mIoU drop in points (default 0.05 for fp32, 0.5 for --int8)")
    g.add_argument("--exporter", choices=["dynamo", "torchscript"],
                   help="torch.onnx exporter (default dynamo; torchscript is deprecated by PyTorch)")
    g.add_argument("--opset", type=int, help="ONNX opset, 17 or newer (default 18 for dynamo, 17 for torchscript)")
    x.add_argument("--keep-aux", action="store_true", help="keep the auxiliary head (dropped by default)")
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--weights", help="weights for a bare ARCH")
    x.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for opt in ("batch", "threads", "max_images"):
        v = getattr(args, opt, None)
        for x in v if isinstance(v, list) else [v]:
            if x is not None and x < (0 if opt == "max_images" else 1):
                print(f"segbench: error: --{opt.replace('_', '-')} must be a positive number, got {x}", file=sys.stderr)
                return 2
    try:
        return args.func(args)
    except UserError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
