"""``segbench curves``: validation mIoU and training loss of several runs in one figure."""

from __future__ import annotations

from segbench.files import prepare_output_file


def add_parser(sub) -> None:
    """The ``curves`` subcommand and its options."""
    cv = sub.add_parser("curves", help="plot validation mIoU and training loss of several runs in one figure")
    cv.add_argument("runs", nargs="+", metavar="RUN_DIR", help="segbench train output folders (with metrics.csv)")
    cv.add_argument("--output", required=True, help="PNG file to write")
    cv.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    cv.set_defaults(func=run)


def run(args) -> int:
    from segbench.report import plot_curves

    prepare_output_file(args.output, args.overwrite)  # a folder, an unwritable place: found before any work
    summary = plot_curves(args.runs, args.output, overwrite=args.overwrite)
    for label, counts in summary.items():
        print(f"{label}: {counts['miou_points']} mIoU points, {counts['loss_points']} loss points")
    print(f"wrote {args.output}")
    return 0
