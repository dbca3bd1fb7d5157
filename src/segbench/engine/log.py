"""The run folder's records: ``config.yaml``, ``metrics.csv``, ``resumes.yaml``, ``skipped.txt`` and TensorBoard.

``metrics.csv`` gets one row every ``log_every`` iterations (mean loss, lr, training img/s, the share of
step time spent waiting for data) and the validation metrics every ``val_every``; on resume the rows past
the checkpoint are dropped. TensorBoard events go to ``tb/`` when the ``tensorboard`` package is installed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml
from tqdm import tqdm

from segbench.data.io import write_bytes_atomic
from segbench.errors import UserError
from segbench.files import write_skipped

CSV_FIELDS = [
    "iter", "epoch", "loss", "lr", "miou", "pixel_accuracy", "mean_accuracy", "elapsed_s", "img_s", "data_wait_pct",
]  # fmt: skip
TRAIN_SCALARS = ("loss", "lr", "img_s", "data_wait_pct")
VAL_SCALARS = ("miou", "pixel_accuracy", "mean_accuracy")


def start_run_folder(out: Path, config: dict, skipped: list[dict]) -> None:
    """Create ``out`` with ``config.yaml``, an empty ``metrics.csv`` and ``skipped.txt`` (when files were skipped)."""
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    write_bytes_atomic(out / "metrics.csv", (",".join(CSV_FIELDS) + "\n").encode())
    write_skipped(out, skipped)


def rewrite_metrics(path: Path, upto_iter: int) -> None:
    """Keep the rows up to ``upto_iter`` (those the checkpoint has seen) under the current header."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("iter", "").isdigit() and int(r["iter"]) <= upto_iter]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode())


def append_metrics(path: Path, row: dict) -> None:
    """Append one row (keys of :data:`CSV_FIELDS`) to ``metrics.csv``.

    Raises:
        UserError: the file cannot be written (full disk, read-only folder); the message names it.
    """
    try:
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS, lineterminator="\n").writerow(row)
    except OSError as exc:
        raise UserError(f"{path}: cannot append the metrics row ({exc.strerror or exc}); stopped") from None


def tensorboard(out: Path, purge_step: int | None):
    """A SummaryWriter on ``out/tb`` (events past ``purge_step`` dropped), or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        tqdm.write(
            "TensorBoard logging is off: the tensorboard package is not installed (pip install 'segbench[tensorboard]')"
        )
        return None
    return SummaryWriter(str(out / "tb"), purge_step=purge_step)


def add_scalars(writer, prefix: str, values: dict[str, float], step: int) -> None:
    """``writer.add_scalar(f"{prefix}/{key}", value, step)`` for each item; nothing when ``writer`` is None."""
    if writer is None:
        return
    for key, value in values.items():
        writer.add_scalar(f"{prefix}/{key}", value, step)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def record_resume(out: Path, iteration: int, saved: dict | None, current: dict, say) -> None:
    """Keep ``config.yaml`` equal to the settings in force, and log what a resume changed.

    A resume may change settings (a longer schedule with ``--set iters=N``, more threads, bf16); the run
    folder then says so: ``config.yaml`` is rewritten with the new settings and ``resumes.yaml`` gets one
    entry ``{iteration, changed: {key: [old, new]}}``, which the model card reports.
    """
    if saved is None:
        return
    before, after = flatten(saved), flatten(current)
    keys = sorted(set(before) | set(after))
    changed = {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}
    if not changed:
        return
    log_path = out / "resumes.yaml"
    history = yaml.safe_load(log_path.read_text()) if log_path.exists() else []
    history.append({"iteration": iteration, "changed": changed})
    write_bytes_atomic(log_path, yaml.safe_dump(history, sort_keys=False).encode())
    write_bytes_atomic(out / "config.yaml", yaml.safe_dump(current, sort_keys=False).encode())
    listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
    say(f"resumed at iteration {iteration} with changed settings: {listed}")
