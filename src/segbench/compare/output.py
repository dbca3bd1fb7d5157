"""The report of a comparison: its settings table and the report folder (:func:`segbench.report.write_report`),
written aside and put in place of the old one as a whole (:func:`segbench.files.replace_folder`)."""

from __future__ import annotations

from pathlib import Path

import torch

from segbench.bench import environment_info
from segbench.bench.env import busy_warning
from segbench.bench.hardware import hardware_profile, hardware_summary
from segbench.files import write_bytes_atomic
from segbench.metrics.summary import confusions_npz
from segbench.report import write_report


def settings_table(data: str | Path, p, opts, rows: list[dict]) -> dict:
    """The report's settings table: data, images, input, device and threads, backends, inference, warnings."""
    settings = {
        "data": str(data),
        "split": opts.split if p.dataset.labelled else "(unlabelled images)",
        "images": p.n_images,
        "input_size": list(p.input_size),
        "batch": opts.batch,
        "device": opts.device,
        "threads": opts.threads or torch.get_num_threads(),
    }
    if p.several:
        settings["backends"] = ", ".join(p.backends)
        if len(p.backends) > 1:
            settings["agreement"] = (f"agreement mIoU: each backend's label maps scored against {p.backends[0]}'s "
                                     "(100 = identical)")  # fmt: skip
    inference = opts.inference
    if inference is not None and (inference.mode != "whole" or inference.tta):
        settings["inference"] = inference.describe()
    if opts.crf is not None:
        settings["crf"] = opts.crf.describe()
    busy = busy_warning(rows)
    if busy:
        settings["warning"] = busy.removeprefix("warning: ")
    if p.dataset.labelled and not any(r.get("miou") is not None for r in rows):
        settings["accuracy_note"] = "Accuracy not measured: no model predicts the data's classes."
    return settings


def report(data: str | Path, out_dir: str | Path, p, opts, results, analysis: dict | None = None,
           partial: dict | None = None) -> dict:  # fmt: skip
    """Write the report folder ``out_dir`` (and ``confusions.npz`` when accuracy was measured); returns
    ``{"rows", "skipped", "files"}`` and the ``comparisons``, ``statements`` and ``robustness`` of ``analysis``.
    ``partial``: the run stopped before every model finished (:func:`segbench.report.write_report`)."""
    grid = []
    for i in range(min(opts.grid_images, p.n_images)):
        item = p.dataset[i]
        if "error" in item:
            continue
        grid.append({"name": item["name"], "image": item["image"], "target": item["mask"],
                     "preds": results.grid_preds.get(item["name"], {})})  # fmt: skip
    rows = [dict(r) for r in results.rows]  # the env of each row stays in results (a resumed run needs it)
    env = next((r["env"] for r in rows if r.get("env")), None) or environment_info(opts.device)
    env = {**{k: v for k, v in env.items() if k != "hardware"}, **hardware_summary(hardware_profile(opts.device, opts.threads))}
    for r in rows:
        r.pop("env", None)
    files = write_report(
        out_dir, rows=rows, class_names=p.class_names, palette=p.palette, grid=grid, env=env,
        settings=settings_table(data, p, opts, rows), skipped=results.skipped or [], masks=results.store,
        interactive=True, analysis=analysis, partial=partial,
    )  # fmt: skip
    if results.matrices:
        npz = confusions_npz(results.image_names, results.matrices, p.class_names)
        files["confusions_npz"] = write_bytes_atomic(Path(out_dir) / "confusions.npz", npz)
    kept = {k: v for k, v in (analysis or {}).items() if k in ("comparisons", "statements", "robustness")}
    return {"rows": rows, "skipped": results.skipped or [], "files": files, **kept}
