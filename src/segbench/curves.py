"""Training curves of several runs in one figure: validation mIoU and training loss against iteration.

Each run folder is a ``segbench train`` output with ``metrics.csv`` (columns ``iter``, ``loss``,
``miou``, ...). The figure has two panels, mIoU (percent) and loss, one line per run, labelled with the
run folder's name (the whole path when two folders share a name).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from segbench.data.io import write_bytes_atomic
from segbench.errors import UserError

__all__ = ["plot_curves", "read_metrics"]


def _float(value: str | None) -> float | None:
    try:
        v = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return None if v is None or math.isnan(v) else v


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read ``run_dir/metrics.csv``.

    Returns:
        ``{"loss": [(iter, loss), ...], "miou": [(iter, miou fraction), ...]}``, rows without a value
        left out.

    Raises:
        UserError: the folder or its ``metrics.csv`` is missing, or the file lacks ``iter``/``loss``/``miou``.
    """
    run = Path(run_dir)
    path = run / "metrics.csv"
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder")
    if not path.is_file():
        raise UserError(f"{run}: no metrics.csv there (not a segbench train run folder)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("iter", "loss", "miou") if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: expected columns iter, loss and miou; missing {', '.join(missing)}")
        series: dict[str, list[tuple[int, float]]] = {"loss": [], "miou": []}
        for row in reader:
            it = _float(row["iter"])
            if it is None:
                continue
            for key, points in series.items():
                v = _float(row[key])
                if v is not None:
                    points.append((int(it), v))
    return series


def plot_curves(run_dirs: list[str | Path], output: str | Path, overwrite: bool = False) -> dict[str, dict]:
    """Plot mIoU (percent) and loss against iteration for ``run_dirs`` into one PNG, written atomically.

    Args:
        run_dirs: run folders holding ``metrics.csv``.
        output: the PNG file to write.
        overwrite: replace an existing ``output``.

    Returns:
        ``{label: {"loss_points": n, "miou_points": m}}`` per run, in the order given.

    Raises:
        UserError: no runs, a folder without ``metrics.csv``, an existing output without ``overwrite``,
            or an output name not ending in ``.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise UserError("curves: give at least one run folder")
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise UserError(f"{output}: the output must be a .png file")
    if output.exists() and not overwrite:
        raise UserError(f"{output}: exists; pass --overwrite to replace it")
    runs = [Path(r) for r in run_dirs]
    data = [read_metrics(r) for r in runs]
    names = [r.resolve().name for r in runs]
    labels = [n if names.count(n) == 1 else str(r) for n, r in zip(names, runs)]

    fig, (ax_miou, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    summary = {}
    for label, series in zip(labels, data):
        if series["miou"]:
            its, vals = zip(*series["miou"])
            ax_miou.plot(its, [v * 100 for v in vals], marker="o", markersize=3, label=label)
        if series["loss"]:
            its, vals = zip(*series["loss"])
            ax_loss.plot(its, vals, label=label)
        summary[label] = {"loss_points": len(series["loss"]), "miou_points": len(series["miou"])}
    ax_miou.set(title="validation mIoU", xlabel="iteration", ylabel="mIoU (%)")
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    for ax in (ax_miou, ax_loss):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(output, buf.getvalue())
    return summary
