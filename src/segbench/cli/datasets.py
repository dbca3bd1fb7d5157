"""``segbench datasets [PATH]``: the dataset layouts segbench reads, or what one folder holds."""

from __future__ import annotations


def add_dataset_arg(sp) -> None:
    """``--dataset NAME``: read ``--data`` as that layout instead of detecting it."""
    from segbench.data.datasets import dataset_names

    sp.add_argument("--dataset", choices=dataset_names(), metavar="NAME",
                    help=f"read the data as this layout instead of detecting it: {', '.join(dataset_names())}")


def add_parser(sub) -> None:
    """The ``datasets`` subcommand and its options."""
    d = sub.add_parser("datasets", help="the supported dataset layouts, or what a folder holds (one line)")
    d.add_argument("path", nargs="?", help="a folder: say which layout, splits, image counts and classes it holds")
    add_dataset_arg(d)
    d.set_defaults(func=run)


def run(args) -> int:
    from segbench.data.datasets import describe_dataset, supported_datasets

    if args.path:
        print(describe_dataset(args.path, args.dataset))
        return 0
    for row in supported_datasets():
        print(f"{row['name']:11s} {row['title']}\n{'':11s} {row['layout']}")
    print("\nDetected in this order from the folder given to --data; --dataset NAME forces one. "
          "`segbench datasets PATH` says what a folder holds.")  # fmt: skip
    return 0
