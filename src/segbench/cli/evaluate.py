"""``segbench evaluate``: pixel accuracy, per-class IoU and mIoU of one model on a labelled split."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from segbench.cli.common import (
    add_backend_args,
    add_class_map_arg,
    add_inference_args,
    add_model_args,
    backend_runner,
    check_backend_args,
    check_new_dir,
    crf_config,
    fmt,
    inference_config,
    load_cli_model,
    pct,
    print_skipped,
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
    e.add_argument("--max-images", type=int, default=0, help="evaluate the first N images only (0 = all)")
    e.add_argument("--output", help="folder for metrics.json and confusion_matrix.csv")
    e.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --output")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    add_inference_args(e)
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
        on_main(check_new_dir, Path(args.output), args.overwrite)
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
    from segbench.compare import check_device
    from segbench.engine.sharded import evaluate_sharded, is_main

    device = check_device(args.device)
    inference_config(args)  # bad options fail before any work
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
    t0 = time.perf_counter()
    res = evaluate_sharded(runner, dataset, len(names), info.mean, info.std, device,
                   max_images=args.max_images, progress=not args.quiet, desc=info.name,
                   inference=inference, crf=crf)  # fmt: skip
    seconds = time.perf_counter() - t0
    if not is_main():
        return 0  # rank 0 reports for every process
    print_skipped(res.skipped)
    if res.metrics is None or res.num_images == 0:
        raise UserError(f"{args.data}: no image could be evaluated ({len(res.skipped)} skipped)")
    m = res.metrics.to_dict(names)
    out = {
        "model": info.name, "weights": info.weights, "backend": args.backend,
        "backend_notes": getattr(runner, "notes", "PyTorch eager, fp32"), "data": str(args.data), "dataset": dataset.layout, "split": args.split,
        "num_images": res.num_images, "seconds": seconds, "throughput_img_s": res.num_images / seconds,
        **m, "skipped": res.skipped,
        "inference": inference.to_dict(), "crf": crf.to_dict() if crf else None,
        "variants": res.variants_dicts(names),
        "class_mapping": mapping.describe() if mapping is not None else None,
        "model_notes": [n for n in (getattr(info, "missing", ""), *getattr(info, "notes", [])) if n],
    }  # fmt: skip
    if args.output:
        _write_files(Path(args.output), out, names, m["confusion"])
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    _print_metrics(args, info, names, m, res.num_images, seconds)
    _print_variants(out["variants"], inference, crf)
    if args.output:
        print(f"wrote {Path(args.output) / 'metrics.json'} and confusion_matrix.csv")
    return 0


def _write_files(folder: Path, out: dict, class_names: list[str], confusion: list[list[int]]) -> None:
    """``metrics.json`` and ``confusion_matrix.csv`` (rows: target class, columns: predicted class)."""
    from segbench.data.io import write_bytes_atomic

    write_bytes_atomic(folder / "metrics.json", json.dumps(out, indent=2).encode())
    header = "target\\pred," + ",".join(class_names) + "\n"
    body = "".join(f"{n}," + ",".join(map(str, r)) + "\n" for n, r in zip(class_names, confusion))
    write_bytes_atomic(folder / "confusion_matrix.csv", (header + body).encode())


def _print_metrics(args, info, names: list[str], m: dict, num_images: int, seconds: float) -> None:
    """The per-class IoU and accuracy table, mIoU, pixel and mean class accuracy."""
    print(f"{info.name}{'' if args.backend == 'eager' else f' ({args.backend})'} on {args.data} "
          f"({args.split}, {num_images} images, {seconds:.1f} s, "
          f"{num_images / seconds:.1f} img/s with image loading overlapped)")  # fmt: skip
    print(f"{'class':16s} {'IoU %':>7s} {'acc %':>7s}")
    for name in names:
        print(f"{name:16s} {pct(m['iou'][name]):>7s} {pct(m['accuracy'][name]):>7s}")
    print(f"{'mIoU':16s} {pct(m['miou']):>7s}")
    print(f"pixel accuracy {pct(m['pixel_accuracy'])} %, mean class accuracy {pct(m['mean_accuracy'])} %")
    print("IoU is NaN ('-') for a class absent from both labels and predictions; such classes are left out of mIoU.")


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
