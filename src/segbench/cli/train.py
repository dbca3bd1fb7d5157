"""``segbench train``: train a network from a YAML recipe (one process, or several under torchrun)."""

from __future__ import annotations


def add_parser(sub) -> None:
    """The ``train`` subcommand and its options."""
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
    t.set_defaults(func=run)


def run(args) -> int:
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
