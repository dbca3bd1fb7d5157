"""The analysis after every model ran: paired comparisons, ranking statements, and the corruption sweep
(:mod:`segbench.engine.robustness`) over every model predicting the data's classes."""

from __future__ import annotations

import sys
from pathlib import Path

from segbench.engine.robustness import CorruptionPlan, Runner, corruption_sweep
from segbench.errors import UserError
from segbench.external import ModelInputs, class_mapping, load_any
from segbench.metrics.summary import comparison_list, ranking
from segbench.specs import unique_label

CHECKPOINT = "corruptions.partial.npz"
"""The corruption sweep's finished cells, in the report folder while it runs."""


def analyse(models: list[str], p, opts, results, checkpoint: Path | None = None) -> dict:
    """Paired comparisons of every pair of rows evaluated on the same images (same resamples), ranking
    statements, and the robustness table when corruptions were asked for (its finished cells saved to
    ``checkpoint`` while it runs). ``p``, ``opts``, ``results``: the comparison's plan, options and results."""
    analysis: dict = {"scores": opts.scores.enabled(), "bootstrap": opts.scores.bootstrap}
    shapes = {m.shape for m in results.matrices.values()}
    if opts.scores.bootstrap and len(results.matrices) > 1 and len(shapes) == 1:
        rank = ranking(results.matrices, opts.scores.bootstrap, opts.scores.seed)
        analysis.update(comparisons=comparison_list(rank), statements=rank.statements(), tiers=rank.tiers)
    if opts.corruptions is not None and p.dataset.labelled:
        analysis["robustness"] = _robustness(models, p, opts, results, checkpoint)
    return analysis


def corruption_runners(specs: list[str], weights: str | None, class_names: list[str], device: str = "cpu",
                       inputs: ModelInputs | None = None, class_map: str | Path | None = None,
                       labels: dict[str, str] | None = None) -> dict:  # fmt: skip
    """Label -> :class:`~segbench.engine.robustness.Runner` for the corruption sweep: every spec that loads
    (segbench's own or external, :func:`~segbench.external.load_any`) and predicts ``class_names``, directly or
    through a class mapping (:func:`~segbench.external.class_mapping`, with ``class_map`` when given). A spec that
    fails to load, or whose classes do not map onto ``class_names``, is left out: its comparison row holds the
    error or note. ``labels``: spec -> the label of its comparison row; a spec without one is labelled as
    :func:`~segbench.compare.compare` labels rows (its loaded name, made unique with where it comes from), so two
    files of one network are two runners, never one under their shared name."""
    runners: dict = {}
    for spec in dict.fromkeys(specs):
        try:
            loaded = load_any(spec, weights=weights, inputs=inputs, device=device)
            mapping = class_mapping(loaded.info.class_names, class_names, class_map)
        except UserError:
            continue
        info, model = loaded.info, loaded.model.eval().to(device)
        label = (labels or {}).get(spec) or unique_label(info.name, spec, set(runners))
        if mapping is not None:
            runners[label] = Runner(mapping.wrap(model), info.preprocessing, len(class_names), mapping)
        elif list(info.class_names) == list(class_names):
            runners[label] = Runner(model, info.preprocessing, info.num_classes)
    return runners


def sweep_saving_cells(runners: dict, dataset, num_images: int, plan: CorruptionPlan, device: str, progress: bool,
                       checkpoint: Path | None, resume: bool, bootstrap: int) -> dict:  # fmt: skip
    """:func:`~segbench.engine.robustness.corruption_sweep` with its finished cells saved to ``checkpoint``;
    when it is interrupted (Ctrl-C, SIGTERM), one line on stderr says where they are and how to resume."""
    try:
        return corruption_sweep(runners, dataset, num_images, plan, device, progress, checkpoint=checkpoint,
                                resume=resume, bootstrap=bootstrap)  # fmt: skip
    except KeyboardInterrupt:
        if checkpoint is not None and checkpoint.exists():
            print(f"segbench: the corruption sweep's finished cells are saved in {checkpoint}; run the same "
                  "command with --resume to continue from them", file=sys.stderr)  # fmt: skip
        raise


def _robustness(models: list[str], p, opts, results, checkpoint: Path | None = None) -> dict:
    """The corruption sweep over every model predicting the data's classes, directly or through a class mapping
    (eager PyTorch, or the model's own runtime for external files); its summary columns
    ``corruption_miou`` and ``corruption_relative`` on the eager rows."""
    labels = {r["spec"]: r["model"] for r in results.rows if r.get("spec")}
    runners = corruption_runners(models, opts.weights, list(p.dataset.class_set.names), opts.device, opts.inputs,
                                 opts.class_map, labels)  # fmt: skip
    table = sweep_saving_cells(runners, p.dataset, p.n_images, opts.corruptions, opts.device, opts.progress,
                               checkpoint, opts.resume, opts.scores.bootstrap)  # fmt: skip
    for r in results.rows:
        t = table["models"].get(r.get("model"))
        if t is not None and r.get("miou") is not None and r.get("backend", "eager") == "eager":
            r.update(corruption_miou=t["mean_miou"], corruption_relative=t["relative_miou"])
    return table
