"""The report of a comparison: its settings table and the report folder (:func:`segbench.report.write_report`),
written aside and put in place of the old one as a whole (:func:`segbench.files.replace_folder`); the report of a
run that stopped (:func:`finish`: marked partial, with the resume file of :mod:`segbench.compare.resume`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from segbench.bench import environment_info
from segbench.bench.env import busy_warning
from segbench.bench.hardware import hardware_profile, hardware_summary
from segbench.bench.machines import machine_id, machines_differ
from segbench.bench.roofline import add_roofline
from segbench.compare.resume import STATE, save_partial
from segbench.compare.robustness import CHECKPOINT
from segbench.errors import UserError
from segbench.files import LOCK_NAME, replace_folder, write_bytes_atomic
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
    machines = machines_differ(rows)  # a --resume finished on another machine
    if machines:
        settings["machines"] = machines.removeprefix("warning: ")
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
    profile = hardware_profile(opts.device, opts.threads)
    for r in results.rows:  # kept in results: a resumed run's rows keep the machine that measured them
        r.setdefault("machine", machine_id(profile))
    rows = [dict(r) for r in results.rows]  # the env of each row stays in results (a resumed run needs it)
    env = next((r["env"] for r in rows if r.get("env")), None) or environment_info(opts.device)
    env = {**{k: v for k, v in env.items() if k != "hardware"}, **hardware_summary(profile)}
    for r in rows:
        r.pop("env", None)
        add_roofline(r, profile)  # min(peak, intensity x bandwidth) from the machine's profile
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


def check_replaceable(out: Path) -> None:
    """Refuse before any work to replace a non-empty folder that holds no report (a whole folder is replaced)."""
    if not out.is_dir():
        return
    names = {q.name for q in out.iterdir()} - {LOCK_NAME}
    if names and not names & {"results.json", STATE}:
        raise UserError(f"{out}: holds files but no report (results.json); the report folder is replaced as a "
                        "whole, so choose an empty or new folder")  # fmt: skip


def finish(models, data, out: Path, stage: Path, p, opts, results, spans: dict[str, tuple[int, int]], key: dict,
           failed: list[str], why: str) -> dict:  # fmt: skip
    """Write the finished models of a stopped run (the report marked partial and the resume file) into ``stage``
    and put it in place of ``out``; ``failed``: models whose rows stay in the report but are measured again."""
    finished = {m: s for m, s in spans.items() if m not in failed}
    unfinished = [m for m in dict.fromkeys(models) if m not in finished]
    message = (f"{len(finished)} of {len(finished) + len(unfinished)} model(s) finished ({why}); not finished: "
               f"{', '.join(unfinished) or 'none'}. Run the same command with --resume to measure only those.")
    partial = {"message": message, "finished_models": list(finished), "unfinished_models": unfinished}
    written = report(data, stage, p, opts, results, None, partial)
    written["files"]["resume"] = save_partial(stage, finished, p, results, key)
    if (out / CHECKPOINT).is_file():  # the corruption sweep's finished cells stay for --resume
        shutil.copy2(out / CHECKPOINT, stage / CHECKPOINT)
    replace_folder(stage, out, "the report folder")
    print(f"segbench: {message.replace('Run the same', 'run the same')} The finished rows are in "
          f"{out / 'results.json'} (marked partial).", file=sys.stderr)  # fmt: skip
    return {**in_place(written, stage, out), "partial": True, "unfinished_models": unfinished}


def in_place(written: dict, stage: Path, out: Path) -> dict:
    """The result of :func:`~segbench.compare.output.report` with its file paths moved from ``stage`` to ``out``."""
    files = {k: out / Path(v).relative_to(stage) for k, v in written["files"].items()}
    return {**written, "files": files}
