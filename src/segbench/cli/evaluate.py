"""``segbench evaluate``: pixel accuracy, per-class IoU and mIoU of one model on a labelled split."""

from __future__ import annotations

import json
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
    backend_runner,
    check_backend_args,
    check_new_dir,
    corruption_plan,
    crf_config,
    fmt,
    inference_config,
    json_safe,
    load_cli_model,
    pct,
    print_skipped,
    score_options,
)
from segbench.cli.datasets import add_dataset_arg
from segbench.cli.launch import distributed
from segbench.errors import UserError


def add_parser(sub) -> None:
    """The ``evaluate`` subcommand and its options."""
    e = sub.add_parser("evaluate", help="pixel accuracy, per-class IoU and mIoU on a labelled split")
    e.add_argument("model", help="ARCH.TAG (e.g. fast_scnn.camvid), ARCH with --weights, a checkpoint path, or a "
                                 "model segbench did not build (FILE.onnx, FILE.pt, FILE.pt2, py:, smp:, hf:)")
    e.add_argument("--data", required=True, help="dataset folder, layout detected (see: segbench datasets)")
    e.add_argument("--split", default="val")
    add_dataset_arg(e)
    add_option(e, "--max-images", default=0, help="evaluate the first N images only (0 = all)")
    e.add_argument("--output", help="folder for metrics.json, confusion_matrix.csv, confusions.npz (per image) and the "
                   "--trimap / --ece / --corruptions plots")
    e.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --output")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    add_option(e, "--threads", help="torch CPU threads (default: torch's)")
    add_inference_args(e)
    add_score_args(e)
    add_corruption_args(e)
    add_backend_args(e)
    add_model_args(e)
    add_class_map_arg(e)
    e.set_defaults(func=run)


def _open(args):
    """The dataset, the loaded model and the mapping of its classes onto the data's (None when they are the
    same), checked against each other, before any work.

    Raises:
        UserError: an unlabelled split, an existing --output, a bad --class-map, or a model predicting other
            classes that no name or --class-map maps onto the data's.
    """
    from segbench.data.datasets import open_dataset
    from segbench.engine.sharded import broadcast_weights, on_main
    from segbench.external import class_mapping, read_class_map_file

    if args.class_map:
        read_class_map_file(args.class_map)
    dataset = open_dataset(args.data, args.split, args.dataset)
    if not dataset.labelled:
        raise UserError(f"{args.data}: split {args.split!r} has no labels to evaluate against")
    if args.output:
        on_main(check_new_dir, Path(args.output), args.overwrite or args.resume)
    loaded = load_cli_model(args, args.device)
    broadcast_weights(loaded.model, args.device)  # the same weights on every torchrun process
    info = loaded.info
    mapping = class_mapping(info.class_names, dataset.class_set.names, args.class_map)
    if mapping is None and list(info.class_names) != list(dataset.class_set.names):
        raise UserError(
            f"{args.model}: predicts {info.num_classes} classes ({', '.join(info.class_names[:3])}, ...) but "
            f"{args.data} has {dataset.class_set.num_classes} ({', '.join(dataset.class_set.names[:3])}, ...), "
            "and no class name matches; map them with --class-map FILE"
        )
    return dataset, loaded, mapping


@distributed
def run(args) -> int:
    import torch

    from segbench.engine.device import check_device
    from segbench.engine.partial import merge_results, partial_files, remaining_pairs
    from segbench.engine.sharded import evaluate_sharded, is_main
    from segbench.metrics.summary import summarise

    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    inference_config(args)  # bad options fail before any work
    scores, corruptions = score_options(args), corruption_plan(args, resume_alone=True)
    if args.resume and not args.output:
        raise UserError("--resume: give the --output of the stopped run")
    check_backend_args(args)
    crf = crf_config(args)
    dataset, loaded, mapping = _open(args)
    info = loaded.info
    inference = inference_config(args, info)
    first = next((dataset[i] for i in range(len(dataset)) if "error" not in dataset[i]), None)
    runner = backend_runner(args, loaded, device, first["image"] if first else None)
    names = list(info.class_names)
    if mapping is not None:
        print(mapping.describe(), file=sys.stderr)
        runner, dataset, names = mapping.wrap(runner), mapping.targets(dataset), list(mapping.data_names)
    settings = _settings(args, info, dataset, inference, crf, scores)
    done = _stopped_run(args, settings, dataset, names, scores, corruptions is not None)
    todo = dataset if done is None else dataset.subset(remaining_pairs(dataset, done, args.max_images))
    t0 = time.perf_counter()
    try:
        res = evaluate_sharded(runner, todo, len(names), info.preprocessing, device,
                               max_images=args.max_images if done is None else 0, progress=not args.quiet,
                               desc=info.name, inference=inference, crf=crf, scores=scores, class_names=names)  # fmt: skip
    except KeyboardInterrupt as stop:
        if args.output:  # every torchrun process keeps its own shard's images
            _keep_stopped(args, stop, done, dataset, names, scores, settings, info)
        raise
    seconds, timed = time.perf_counter() - t0, res.num_images  # this run's images, behind the throughput
    if done is not None:
        print(f"resumed: {done.num_images} image(s) from {', '.join(str(q) for q in partial_files(args.output))}, "
              f"{res.num_images} evaluated now", file=sys.stderr)  # fmt: skip
        res = merge_results(done, res, dataset, len(names), scores, names)
    if not is_main():
        return 0  # rank 0 reports for every process
    print_skipped(res.skipped, Path(args.output) if args.output else None)
    if res.metrics is None or res.num_images == 0:
        raise UserError(f"{args.data}: no image could be evaluated ({len(res.skipped)} skipped)")
    m = res.metrics.to_dict(names)
    out = {
        "model": info.name, "weights": info.weights, "backend": args.backend,
        "backend_notes": getattr(runner, "notes", "PyTorch eager, fp32"), "data": str(args.data), "dataset": dataset.layout, "split": args.split,
        "num_images": res.num_images, "threads": torch.get_num_threads(), "seconds": seconds, "throughput_img_s": timed / seconds,
        "resumed_images": done.num_images if done is not None else 0,
        **m, "skipped": res.skipped,
        "inference": inference.to_dict(), "crf": crf.to_dict() if crf else None,
        "variants": res.variants_dicts(names),
        "class_mapping": mapping.describe() if mapping is not None else None,
        "model_notes": [n for n in (getattr(info, "missing", ""), *getattr(info, "notes", [])) if n],
    }  # fmt: skip
    out.update(summarise(res, scores))
    if corruptions is not None:
        out["robustness"] = _sweep(args, info, runner, dataset, len(names), corruptions, device, scores.bootstrap)
    out["definitions"] = DEFINITIONS
    if args.output:
        _write_files(Path(args.output), out, names, m["confusion"], res)
        for kept in partial_files(args.output):  # finished: nothing left to resume
            kept.unlink(missing_ok=True)
    if args.json:
        print(json.dumps(json_safe(out), indent=2))
        return 0
    _print_metrics(args, info, names, m, res.num_images, seconds, timed)
    _print_scores(out, names)
    _print_variants(out["variants"], inference, crf)
    for g in out.get("gains", []):
        print(f"{g['statement']} (paired 95% interval over images)")
    if out.get("robustness"):
        _print_robustness(out["robustness"])
    if args.output:
        plots = [f for k, f in (("trimap", "trimap.png"), ("calibration", "reliability.png"),
                                ("robustness", "corruptions.png")) if out.get(k)]  # fmt: skip
        print(f"wrote {Path(args.output) / 'metrics.json'}, confusion_matrix.csv, confusions.npz"
              + "".join(f", {f}" for f in plots))
    return 0


def _settings(args, info, dataset, inference, crf, scores) -> dict:
    """What a resumed run must share with the stopped one for their images to make one result."""
    from dataclasses import asdict

    return json_safe({"model": args.model, "weights": info.weights, "backend": args.backend,
                      "data": str(Path(args.data).resolve()), "split": args.split, "layout": dataset.layout,
                      "max_images": args.max_images, "inference": inference.to_dict(),
                      "crf": crf.to_dict() if crf else None, "scores": asdict(scores),
                      "class_map": str(args.class_map) if args.class_map else None})  # fmt: skip


def _stopped_run(args, settings: dict, dataset, names: list[str], scores, sweep: bool):
    """With --resume, the stopped run's result from ``--output``: its one file, or every torchrun process's,
    joined (None without --resume, or when only a corruption sweep is to be continued).

    Raises:
        UserError: nothing to resume in --output, or a file of other settings.
    """
    from segbench.engine.partial import PARTIAL, load_partials

    if not args.resume:
        return None
    done = load_partials(args.output, settings, dataset, len(names), scores, names)
    if done is None and not sweep:
        raise UserError(f"--resume: {args.output} holds no stopped evaluation ({PARTIAL}); give the --output of "
                        "the run that stopped, or run without --resume")  # fmt: skip
    return done


def _keep_stopped(args, stop, done, dataset, names, scores, settings, info) -> None:
    """On a stop: the images scored so far (with the stopped run's, when resumed) into ``--output``, one line.
    One process: ``evaluate.partial.npz`` for ``--resume`` and their accuracy in ``metrics.json`` marked partial.
    Under torchrun each process writes its own shard's file (:func:`~segbench.engine.partial.partial_name`)
    without waiting for the others, and ``--resume`` joins them."""
    from segbench.engine.partial import merge_results, partial_name, save_partial
    from segbench.engine.sharded import rank_world
    from segbench.files import write_bytes_atomic

    rank, world = rank_world()
    part = getattr(stop, "partial", None)
    if part is None:  # stopped outside the image loop (loading, or a torchrun gather): nothing of its own to add
        if done is None:
            print("segbench: stopped before any image was scored; nothing kept", file=sys.stderr)
        return
    if done is not None:
        part = merge_results(done, part, dataset, len(names), scores, names)
    folder = Path(args.output)
    path = save_partial(folder / partial_name(rank, world), part, settings)
    if world > 1:
        print(f"segbench: stopped (rank {rank} of {world}); its {part.num_images} scored image(s) are in {path}; "
              "run the same command with --resume, with any number of processes, to evaluate only the rest",
              file=sys.stderr)  # fmt: skip
        return
    n = min(len(dataset), args.max_images) if args.max_images else len(dataset)
    out = {"partial": True, "model": info.name, "weights": info.weights, "backend": args.backend,
           "data": str(args.data), "split": args.split, "num_images": part.num_images, "images_total": n,
           "finished_images": list(part.image_names), "skipped": part.skipped,
           **(part.metrics.to_dict(names) if part.metrics is not None else {})}  # fmt: skip
    path = write_bytes_atomic(folder / "metrics.json", json.dumps(json_safe(out), indent=2).encode())
    print(f"segbench: stopped after {part.num_images} of {n} images; their accuracy is in {path} (marked "
          f"partial); run the same command with --resume to evaluate only the rest", file=sys.stderr)


DEFINITIONS = {
    "miou": "dataset-level mIoU: per-class IoU from the confusion matrix summed over all images, averaged over "
            "classes (a class absent from labels and predictions is left out)",
    "per_image_miou_mean": "mean over images of each image's own mIoU (from that image's matrix; classes absent "
                           "from the image's labels and predictions left out): every image weighs the same",
    "intervals": "95% percentile bootstrap intervals over images (resampled with replacement, metrics recomputed "
                 "from the summed matrices of each resample)",
}  # fmt: skip


def _write_files(folder: Path, out: dict, class_names: list[str], confusion: list[list[int]], res) -> None:
    """``metrics.json``, ``confusion_matrix.csv`` (rows: target class, columns: predicted class),
    ``confusions.npz`` (per image and variant, :func:`segbench.metrics.summary.confusions_npz`), and with
    ``--trimap`` / ``--ece`` the plots ``trimap.png`` / ``reliability.png``."""
    from segbench.data.io import write_bytes_atomic
    from segbench.metrics.summary import confusions_npz
    from segbench.report.analysis import FIGURE_FILES, analysis_figures

    write_bytes_atomic(folder / "metrics.json", json.dumps(json_safe(out), indent=2).encode())
    matrices = {v.name: v.confusions for v in res.variants if v.confusions is not None}
    write_bytes_atomic(folder / "confusions.npz", confusions_npz(res.image_names, matrices, class_names))
    row = {"_label": out["model"], "trimap": out.get("trimap"), "calibration": out.get("calibration"),
           "variants": out.get("variants")}
    figures = analysis_figures([row], {"robustness": out.get("robustness")})
    for key, (png, _) in figures.items():  # trimap.png, reliability.png, corruptions.png when measured
        if png is not None:
            write_bytes_atomic(folder / FIGURE_FILES[key], png)
    header = "target\\pred," + ",".join(class_names) + "\n"
    body = "".join(f"{n}," + ",".join(map(str, r)) + "\n" for n, r in zip(class_names, confusion))
    write_bytes_atomic(folder / "confusion_matrix.csv", (header + body).encode())


def _sweep(args, info, runner, dataset, num_classes: int, plan, device: str, bootstrap: int) -> dict:
    """The corruption sweep of the evaluated model (as run: backend, class mapping) over the evaluated images,
    its finished cells saved in --output while it runs."""
    from segbench.compare import CHECKPOINT, sweep_saving_cells
    from segbench.engine.robustness import Runner

    label = info.name if args.backend == "eager" else f"{info.name} ({args.backend})"
    n = min(len(dataset), args.max_images) if args.max_images else len(dataset)
    checkpoint = Path(args.output) / CHECKPOINT if args.output else None
    return sweep_saving_cells({label: Runner(runner, info.preprocessing, num_classes)}, dataset, n, plan, device,
                              not args.quiet, checkpoint, args.resume, bootstrap)  # fmt: skip


def _print_robustness(table: dict) -> None:
    """mIoU per corruption (mean over the severities) and relative to clean, then the mean and clean rows."""
    (t,) = table["models"].values()
    sev = ",".join(map(str, table["severities"]))
    print(f"corruptions on {table['num_images']} images, severities {sev} (seed {table['seed']}):")
    print(f"{'corruption':18s} {'mIoU %':>7s} {'rel. %':>7s}")
    for c in table["corruptions"]:
        print(f"{c:18s} {pct(t['mean'][c]):>7s} {pct(t['relative'][c]):>7s}")
    print(f"{'mean':18s} {pct(t['mean_miou']):>7s} {pct(t['relative_miou']):>7s}"
          f"  mIoU{_interval(t.get('mean_miou_interval'))}, relative{_interval(t.get('relative_miou_interval'))}")
    print(f"{'clean':18s} {pct(t['clean_miou']):>7s}{'':8s}  mIoU{_interval(t.get('clean_miou_interval'))}")


def _print_metrics(args, info, names: list[str], m: dict, num_images: int, seconds: float, timed: int) -> None:
    """The per-class IoU and accuracy table, mIoU, pixel and mean class accuracy (``timed``: the images this
    run evaluated in ``seconds``, fewer than ``num_images`` when it resumed a stopped one)."""
    resumed = f", {num_images - timed} of them from the stopped run" if timed < num_images else ""
    print(f"{info.name}{'' if args.backend == 'eager' else f' ({args.backend})'} on {args.data} "
          f"({args.split}, {num_images} images{resumed}; {timed} in {seconds:.1f} s, "
          f"{timed / seconds:.1f} img/s with image loading overlapped)")  # fmt: skip
    print(f"{'class':16s} {'IoU %':>7s} {'acc %':>7s}")
    for name in names:
        print(f"{name:16s} {pct(m['iou'][name]):>7s} {pct(m['accuracy'][name]):>7s}")
    print(f"{'mIoU':16s} {pct(m['miou']):>7s}")
    print(f"pixel accuracy {pct(m['pixel_accuracy'])} %, mean class accuracy {pct(m['mean_accuracy'])} %")
    print("IoU is NaN ('-') for a class absent from both labels and predictions; such classes are left out of mIoU.")


def _interval(pair) -> str:
    return "" if not pair or pair[0] is None else f" [{pct(pair[0])}, {pct(pair[1])}]"


def _print_scores(out: dict, class_names: list[str]) -> None:
    """Intervals, per-image mIoU, boundary IoU, trimap and ECE lines (those measured)."""
    if "miou_interval" in out:
        b = out["bootstrap"]
        q = out["per_image_miou_quantiles"]
        print(f"mIoU {pct(out['miou'])}{_interval(out['miou_interval'])} %, pixel accuracy "
              f"{pct(out['pixel_accuracy'])}{_interval(out['pixel_accuracy_interval'])} % (95% bootstrap intervals "
              f"over {b['num_images']} images, B = {b['num_resamples']}, seed {b['seed']})")  # fmt: skip
        print(f"per-image mIoU: mean {pct(out['per_image_miou_mean'])}{_interval(out['per_image_miou_interval'])} %, "
              f"median {pct(q['median'])}, quartiles {pct(q['q25'])}-{pct(q['q75'])} (each image's own mIoU; the "
              "dataset-level mIoU above pools the pixels of all images first)")  # fmt: skip
        print("class IoU intervals: " + ", ".join(
            f"{n}{_interval(i)}" for n, i in zip(class_names, out["iou_interval"])))  # fmt: skip
    if "boundary" in out:
        b_out = out["boundary"]
        print(f"boundary mIoU {pct(b_out['boundary_miou'])}{_interval(b_out.get('boundary_miou_interval'))} % "
              f"(dilation ratio {b_out['dilation_ratio']})")  # fmt: skip
    if "trimap" in out:
        t = out["trimap"]
        shown = [w for w in (1, 2, 5, 10, 20, 40) if w <= len(t["width_px"])]
        print("trimap mIoU % by band width: " + ", ".join(f"{w} px {pct(t['miou'][w - 1])}" for w in shown))
    if "calibration" in out:
        print(f"ECE {pct(out['calibration']['ece'])} % (max-softmax, {len(out['calibration']['reliability']['count'])}"
              " bins, labelled pixels)")


def _print_variants(variants: list[dict], inference, crf) -> None:
    """The plain -> +TTA -> +CRF table of evaluate: mIoU and milliseconds per image of each step."""
    print(f"inference: {inference.describe()}" + (f"; {crf.describe()}" if crf else ""))
    if len(variants) < 2:
        return
    print(f"{'step':10s} {'mIoU %':>7s} {'ms/img':>9s} {'extra ms':>9s}")
    for v in variants:
        extra = v.get("extra_ms_per_image")
        print(f"{v['name']:10s} {pct(v.get('miou')):>7s} {fmt(v.get('ms_per_image'), '.1f'):>9s} "
              f"{'-' if v['name'] == 'plain' else fmt(extra, '+.1f'):>9s}")
    print("ms/img: wall-clock time per image to produce that label map (model, TTA, CRF; not decoding); "
          "extra ms: over plain.")
