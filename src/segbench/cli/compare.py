"""``segbench compare``: models side by side on the same images, one report (:func:`segbench.compare.compare`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from segbench.cli.args import add_option
from segbench.cli.common import (
    add_backend_args,
    add_class_map_arg,
    add_corruption_args,
    add_inference_args,
    add_model_args,
    add_score_args,
    check_backend_args,
    check_new_dir,
    corruption_plan,
    crf_config,
    fmt,
    inference_config,
    model_inputs,
    pct,
    print_row_warnings,
    print_skipped,
    score_options,
)
from segbench.cli.datasets import add_dataset_arg
from segbench.cli.launch import distributed
from segbench.errors import UserError


def add_parser(sub) -> None:
    """The ``compare`` subcommand and its options."""
    c = sub.add_parser("compare", help="the main job: models side by side on the same images, one report")
    c.add_argument("models", nargs="*", help="models to compare (default: every model shipped in segbench's zoo): "
                   "tags, ARCH with --weights, checkpoints, FILE.onnx, FILE.pt (TorchScript), FILE.pt2, "
                   "py:MODULE:FUNCTION, smp:ARCH:ENCODER[:CLASSES], hf:PATH_OR_ID")
    c.add_argument("--data", help="dataset folder or folder of images (default: the CamVid sample shipped with segbench)")
    c.add_argument("--split", default="val")
    add_dataset_arg(c)
    c.add_argument("--output", help="report folder (default reports/compare-DATE-TIME)")
    c.add_argument("--overwrite", action="store_true", help="replace a non-empty --output (a report folder) as a whole")
    add_option(c, "--size", metavar=("H", "W"), help="benchmark input size (default: the first image's)")
    add_option(c, "--batch", default=1, help="benchmark batch size")
    add_option(c, "--threads", help="torch CPU threads (default: torch's)")
    add_option(c, "--max-images", default=0, help="evaluate on the first N images only (0 = all)")
    add_option(c, "--grid", default=4, help="images shown side by side (default 4)")
    add_option(c, "--min-time", default=2.0, help="minimum timed seconds per latency measurement")
    add_option(c, "--time-budget", default=60.0, metavar="SECONDS",
               help="seconds for the whole comparison (default 60): each (model, backend) gets a share for "
                    "its evaluation and timing; timing stops when the median's 95%% interval is within 2%% "
                    "or the share is spent (one line says which cases the budget cut short)")
    c.add_argument("--in-process", action="store_true",
                   help="time the models in this process instead of a fresh subprocess per (model, backend)")
    c.add_argument("--quiet", action="store_true")
    add_inference_args(c)
    add_score_args(c, scores_on=True)
    add_corruption_args(c)
    add_backend_args(c, several=True)
    add_model_args(c, "weights for bare ARCH names and smp: specs: a tag, a file, or 'none'")
    add_class_map_arg(c)
    c.set_defaults(func=run)


@distributed
def run(args) -> int:
    from segbench.bench.budget import check_time_budget, cut_line, process_start_time
    from segbench.compare import compare, zoo_models
    from segbench.data.datasets import sample_dir
    from segbench.engine.sharded import is_main, on_main
    from segbench.external import check_spec, external_kind
    from segbench.specs import unique_specs

    models, repeats = unique_specs(args.models or zoo_models())
    if not models:
        raise UserError("no models given and no shipped models found in segbench/zoo")
    data = args.data or sample_dir()
    check_backend_args(args)
    if is_main():
        from segbench.bench.select import native_notes

        for line in native_notes(args.backend, args.device):  # what best leaves out; named emulated backends
            print(line, file=sys.stderr)
    for spec in models:  # a malformed spec or an unreadable model file stops before any work
        if external_kind(spec) is not None:
            check_spec(spec)
    time_budget_s = check_time_budget(args.time_budget)
    inference, crf = inference_config(args), crf_config(args)
    scores, corruptions, inputs = score_options(args), corruption_plan(args, resume_alone=True), model_inputs(args)
    out = Path(args.output or time.strftime("reports/compare-%Y%m%d-%H%M%S"))
    if args.resume:  # before any work, and never a silent re-run over a finished report
        from segbench.compare.resume import STATE
        from segbench.compare.robustness import CHECKPOINT

        if not any((out / name).is_file() for name in (STATE, CHECKPOINT)):
            raise UserError(f"--resume: {out} holds no stopped comparison ({STATE} or {CHECKPOINT}); give the "
                            "--output of the run that stopped, or run without --resume")  # fmt: skip
    on_main(check_new_dir, out, args.overwrite or args.resume)
    if is_main():
        for note in repeats:
            print(f"note: {note}", file=sys.stderr)
        print(f"comparing {', '.join(models)} on {data}")
    result = compare(
        models, data, out, split=args.split, weights=args.weights, input_size=tuple(args.size) if args.size else None,
        batch=args.batch, device=args.device, threads=args.threads, max_images=args.max_images,
        grid_images=args.grid, min_time_s=args.min_time, progress=not args.quiet, inference=inference, crf=crf,
        backends=args.backend, calibration=args.calibration, isolate=not args.in_process, dataset=args.dataset,
        inputs=inputs, class_map=args.class_map, scores=scores, corruptions=corruptions,
        resume=args.resume, time_budget_s=time_budget_s, budget_start=process_start_time(),
    )
    if not is_main():
        return 0  # rank 0 reports for every process
    measured = ("miou", "agreement_miou", "latency_ms_p50")  # a row whose benchmark crashed still has its accuracy
    if result["rows"] and all(r.get("error") and all(r.get(k) is None for k in measured) for r in result["rows"]):
        first = result["rows"][0]
        raise UserError(f"no model could be evaluated ({len(result['rows'])} failed; the first, {first['model']}: "
                        f"{first['error']}); the errors are in {result['files'].get('report_html', out)}")
    several = args.backend != ["eager"]
    for r in result["rows"]:
        name = r["model"] + (f" ({r['backend']})" if several and r.get("backend") else "")
        if r.get("error"):
            print(f"{name:34s} error: {r['error']}")
        else:
            agree = "" if r.get("agreement_miou") is None else f"  agreement mIoU {pct(r['agreement_miou'])}"
            ci = "" if not r.get("miou_interval") else f" [{pct(r['miou_lo'])}, {pct(r['miou_hi'])}]"
            print(f"{name:34s} mIoU {pct(r.get('miou')):>6s}{ci}  p50 {fmt(r.get('latency_ms_p50')):>8s} ms  "
                  f"{fmt(r.get('params_m'))} M params  {fmt(r.get('gflops'))} GFLOPs{agree}")
            for v in r.get("variants", [])[1:]:
                print(f"{'':34s}   {v['name']}: mIoU {pct(v.get('miou'))} (plain {pct(r['variants'][0].get('miou'))}), "
                      f"{fmt(v.get('extra_ms_per_image'), '+.1f')} ms/image")
            for g in r.get("gains", []):
                print(f"{'':34s}   {g['statement']}")
    for line in result.get("statements", []):
        print(line)
    if "best" in args.backend:
        from segbench.bench.select import describe_choice

        for r in result["rows"]:
            if r.get("best"):
                print(describe_choice(r["model"], r["best_choice"]))
    for r in result["rows"]:
        line = cut_line(r, r["model"] + (f" ({r['backend']})" if several and r.get("backend") else ""))
        if line:
            print(line)
    print_skipped(result["skipped"], listed=result["files"].get("skipped_txt"))  # the list is in the report folder
    print_row_warnings(result["rows"])
    print(f"report: {result['files']['report_html']} (and report.md, results.json, results.csv)")
    return 0
