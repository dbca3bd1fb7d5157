"""``segbench predict``: a label PNG, an overlay PNG (and optionally a confidence PNG) for each image, with
:func:`segbench.engine.predict.predict_images`."""

from __future__ import annotations

from pathlib import Path

from segbench.cli.args import add_option
from segbench.cli.common import (
    add_backend_args,
    add_inference_args,
    add_model_args,
    backend_runner,
    check_backend_args,
    crf_config,
    inference_config,
    load_cli_model,
    print_skipped,
)
from segbench.cli.datasets import add_dataset_arg
from segbench.errors import UserError
from segbench.files import prepare_output_dir


def add_parser(sub) -> None:
    """The ``predict`` subcommand and its options."""
    pr = sub.add_parser("predict", help="label PNG and overlay PNG for each image")
    pr.add_argument("model", help="ARCH.TAG, ARCH with --weights, a checkpoint path, or FILE.onnx, FILE.pt, "
                                  "FILE.pt2, py:MODULE:FUNCTION, smp:ARCH:ENCODER, hf:PATH_OR_ID")
    pr.add_argument("images", nargs="+", help="image files and/or folders (with --dataset: one dataset folder)")
    add_dataset_arg(pr)
    pr.add_argument("--split", default="val", help="with --dataset: the split whose images are segmented (default val)")
    pr.add_argument("--output", default="predictions", help="output folder (default ./predictions)")
    pr.add_argument("--overwrite", action="store_true", help="replace existing output files")
    pr.add_argument("--skip-existing", action="store_true",
                    help="leave out images whose outputs all exist: finishes an interrupted batch")
    add_option(pr, "--alpha", default=0.5, help="mask opacity in the overlay (0..1)")
    pr.add_argument("--confidence", action="store_true",
                    help="also write STEM_confidence.png: the max softmax probability per pixel (0..255 = 0..1)")
    pr.add_argument("--quiet", action="store_true")
    add_inference_args(pr)
    add_backend_args(pr)
    add_model_args(pr)
    pr.set_defaults(func=run)


def _targets(args, dataset, out: Path) -> list[dict[str, Path]]:
    """The output files of every image.

    Raises:
        UserError: two images would write the same files, or files exist without --overwrite.
    """
    from segbench.engine.predict import output_paths

    by_stem: dict[str, Path] = {}
    for p, _ in dataset.pairs:
        if p.stem in by_stem:
            raise UserError(f"{p} and {by_stem[p.stem]} would write the same outputs ({p.stem}_label.png); rename one")
        by_stem[p.stem] = p
    targets = output_paths(out, [p.stem for p, _ in dataset.pairs], args.confidence)
    existing = [str(t) for paths in targets for t in paths.values() if t.exists()]
    if existing and not (args.overwrite or args.skip_existing):
        raise UserError(f"{existing[0]}: exists (and {len(existing) - 1} more); pass --overwrite to replace them "
                        "or --skip-existing to finish an interrupted batch")
    return targets


def _split_images(args):
    """The images of ``--split`` of the one dataset folder given, as unlabelled images."""
    from segbench.data.datasets import SegmentationDataset, open_dataset

    if len(args.images) != 1:
        raise UserError(f"--dataset {args.dataset}: expected one dataset folder, got {len(args.images)} paths")
    found = open_dataset(args.images[0], args.split, args.dataset)
    return SegmentationDataset([(p, None) for p, _ in found.pairs], None)  # a missing image is skipped and listed


def run(args) -> int:
    from segbench.engine.device import check_device
    from segbench.data.datasets import images as image_dataset
    from segbench.engine.predict import predict_images
    device = check_device(args.device)
    inference_config(args)  # bad options fail before any work
    check_backend_args(args)
    crf = crf_config(args)
    dataset = image_dataset(args.images) if args.dataset is None else _split_images(args)
    if not len(dataset):
        raise UserError(f"{' '.join(args.images)}: no images found")
    if args.overwrite and args.skip_existing:
        raise UserError("--overwrite and --skip-existing: choose one")
    out = prepare_output_dir(args.output, overwrite=True)  # existing files are checked one by one below
    targets = _targets(args, dataset, out)
    loaded = load_cli_model(args, device)
    info = loaded.info
    inference = inference_config(args, info)
    loaded.model.eval().to(device)
    first = next((dataset[i] for i in range(len(dataset)) if "error" not in dataset[i]), None)
    runner = backend_runner(args, loaded, device, first["image"] if first else None)

    def report(item, paths, top):
        if not args.quiet:
            print(f"{item['path']} -> {', '.join(p.name for p in paths.values())} ({', '.join(top)})")

    result = predict_images(runner, dataset, info, out, targets, inference=inference, crf=crf, device=device,
                            alpha=args.alpha, backend=args.backend, skip_existing=args.skip_existing,
                            on_image=report)  # fmt: skip
    skipped = result.skipped
    print_skipped(skipped, listed=result.skipped_file)  # by reason; the full list in OUT/skipped.txt
    already = f", {result.already_done} already done" if result.already_done else ""
    print(f"{result.done} images segmented into {out}{already}" + (f", {len(skipped)} skipped" if skipped else "")
          + f" ({inference.describe()}" + (f"; {crf.describe()})" if crf else ")"))  # fmt: skip
    if skipped and result.done == 0:
        return 2  # nothing was segmented: as evaluate, a failure
    return 0
