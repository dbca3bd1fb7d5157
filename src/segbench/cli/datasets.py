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
    d.add_argument("--class-balance", nargs="+", metavar="SPLIT",
                   help="per class, the share of labelled pixels (%%) and the images holding it, for each SPLIT "
                        "side by side (a Markdown table; only the label maps are read)")
    add_dataset_arg(d)
    d.set_defaults(func=run)


def run(args) -> int:
    from segbench.data.datasets import describe_dataset, supported_datasets

    if args.class_balance:
        return _class_balance(args)
    if args.path:
        print(describe_dataset(args.path, args.dataset))
        return 0
    for row in supported_datasets():
        print(f"{row['name']:11s} {row['title']}\n{'':11s} {row['layout']}")
    print("\nDetected in this order from the folder given to --data; --dataset NAME forces one. "
          "`segbench datasets PATH` says what a folder holds.")  # fmt: skip
    return 0


def _class_balance(args) -> int:
    from segbench.cli.common import print_skipped
    from segbench.data.balance import balance_table, class_balance
    from segbench.data.datasets import open_dataset
    from segbench.errors import UserError

    if not args.path:
        raise UserError("--class-balance: give the dataset folder (segbench datasets PATH --class-balance SPLIT ...)")
    balances = [class_balance(open_dataset(args.path, split, args.dataset), split) for split in args.class_balance]
    print(balance_table(balances))
    print_skipped([s for b in balances for s in b.skipped])
    return 0
