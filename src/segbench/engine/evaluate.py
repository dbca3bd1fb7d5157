"""Evaluation: run a model over a dataset and accumulate the confusion matrix.

By default each image is segmented by one whole-image forward pass. With an
:class:`~segbench.engine.inference.InferenceConfig` (sliding window, test-time augmentation) and/or a
:class:`~segbench.engine.crf.CRFConfig` (dense CRF), :func:`evaluate` measures the chain
plain -> +TTA -> +CRF on the same images in one pass, so the report can show mIoU with and without each
step and the time each costs per image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from segbench.classes import IGNORE_INDEX
from segbench.data.datasets import SegmentationDataset
from segbench.data.prefetch import prefetch
from segbench.data.transforms import preprocess
from segbench.engine.crf import CRFConfig, dense_crf, require_crf
from segbench.engine.inference import InferenceConfig, choose_mode, predict_label, predict_probs
from segbench.metrics import SegMetrics
from segbench.metrics.per_image import DistanceCache, ImageScores, ScoreOptions
from segbench.preprocessing import Preprocessing, as_preprocessing


@torch.inference_mode()
def predict_logits(model: nn.Module, image: np.ndarray, preprocessing: Preprocessing,
                   device: str = "cpu") -> torch.Tensor:  # fmt: skip
    """Logits ``(1, C, H, W)`` for one ``(H, W, 3)`` uint8 RGB image, whole-image inference."""
    return model(preprocess(image, preprocessing, device))


def predict_mask(model: nn.Module, image: np.ndarray, preprocessing: Preprocessing, device: str = "cpu") -> np.ndarray:
    """Label map ``(H, W)`` int64 (argmax of the logits) for one RGB image."""
    return labels(predict_logits(model, image, preprocessing, device))[0].cpu().numpy()


def labels(logits: torch.Tensor) -> torch.Tensor:
    """Class indices ``(N, H, W)`` int64 of the largest of the logits ``(N, C, H, W)``, the first on ties
    (as ``argmax``). ``max(1).indices`` instead of ``argmax(1)``: same result, about 4x faster on CPU for
    ``(1, 11, 360, 480)`` logits (torch 2.15, one thread: median 35 vs 9 ms, measured in segbench issue 5)."""
    return logits.max(1).indices


@dataclass
class Variant:
    """One step of the inference chain measured by :func:`evaluate`.

    ``name`` is ``"plain"`` (the configured mode, no TTA, no CRF), ``"tta"``, ``"crf"`` (plain + CRF) or
    ``"tta+crf"``; ``ms_per_image`` is the mean wall-clock time in milliseconds to produce its label map
    from a decoded image (for ``+crf`` steps it includes the step before). ``confusions`` holds one
    ``(C, C)`` matrix per evaluated image, ``(N, C, C)`` int64 (:mod:`segbench.metrics.per_image`);
    ``trimap_confusions`` the per-image band matrices ``(N, W, C, C)`` when trimap scores were asked for;
    ``extra`` the optional scores (``boundary``, ``trimap``, ``calibration``); ``counts`` every image's counts
    behind them (:meth:`~segbench.metrics.per_image.ImageScores.per_image`: what the torchrun merge sums).
    """

    name: str
    metrics: SegMetrics | None = None
    ms_per_image: float | None = None
    confusions: np.ndarray | None = None
    trimap_confusions: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    counts: dict | None = None
    _seconds: float = 0.0
    _scores: ImageScores | None = None

    def to_dict(self, class_names: list[str] | None = None, plain_ms: float | None = None) -> dict:
        out: dict = {"name": self.name, "ms_per_image": self.ms_per_image}
        if plain_ms is not None and self.ms_per_image is not None:
            out["extra_ms_per_image"] = self.ms_per_image - plain_ms
        if self.metrics is not None:
            m = self.metrics.to_dict(class_names)
            out.update({k: m[k] for k in ("miou", "pixel_accuracy", "mean_accuracy", "iou")})
        out.update(self.extra)
        return out


@dataclass
class EvalResult:
    metrics: SegMetrics | None  # None when the dataset has no labels; the last variant's when several
    num_images: int
    skipped: list[dict] = field(default_factory=list)  # {"file", "reason"}
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # kept for the names asked for
    variants: list[Variant] = field(default_factory=list)  # plain [, tta] [, crf | tta+crf]
    image_names: list[str] = field(default_factory=list)  # evaluated images, the order of the per-image matrices

    def variants_dicts(self, class_names: list[str] | None = None) -> list[dict]:
        """Variants as plain dicts with ``extra_ms_per_image`` relative to ``plain``."""
        plain = next((v.ms_per_image for v in self.variants if v.name == "plain"), None)
        return [v.to_dict(class_names, plain) for v in self.variants]


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def _segment_chain(model: nn.Module, image: np.ndarray, preprocessing: Preprocessing, cfg: InferenceConfig,
                   crf: CRFConfig | None, device, variants: list[Variant], want_probs: bool = False,
                   confidence: bool = False) -> tuple[list[tuple], np.ndarray | None]:  # fmt: skip
    """``(label map (1, H, W), probabilities (1, C, H, W) or None)`` of one image for each variant (plain
    [, tta] [, crf]), adding each step's seconds to its variant; probabilities only with ``want_probs``. With
    ``confidence`` also the last step's largest class probability ``(H, W)`` (float32 in [0, 1]; else None),
    computed outside the timed steps."""
    plain_cfg = cfg.plain
    # plain whole-image: the argmax of the logits, as predict_logits; sliding with no probabilities needed
    # after it: the label map finished band by band (no (C, H, W) buffer for a huge photo)
    whole = choose_mode(model, image.shape[:2], plain_cfg, device) == "whole"
    need_plain_probs = want_probs or crf is not None or (confidence and not cfg.tta)
    t0 = time.perf_counter()
    out = None
    if whole:
        out = predict_logits(model, image, preprocessing, device)
        plain_label = labels(out)
    elif not need_plain_probs:
        label, _ = predict_label(model, image, preprocessing, replace(plain_cfg, mode="slide"), device)
        plain_label = torch.from_numpy(label).long().unsqueeze(0).to(device)
    else:
        out = predict_probs(model, image, preprocessing, replace(plain_cfg, mode="slide"), device)
        plain_label = labels(out)
    _sync(device)
    variants[0]._seconds += time.perf_counter() - t0
    plain_probs = None
    if out is not None and need_plain_probs:
        plain_probs = torch.softmax(out.float(), 1) if whole else out
    preds: list[tuple] = [(plain_label, plain_probs if want_probs else None)]
    probs = None
    if cfg.tta:
        t0 = time.perf_counter()
        probs = predict_probs(model, image, preprocessing, cfg, device)
        preds.append((labels(probs), probs if want_probs else None))
        _sync(device)
        variants[1]._seconds += time.perf_counter() - t0
    last = probs if probs is not None else plain_probs
    if crf is not None:
        t0 = time.perf_counter()
        q = dense_crf(image, last, crf)
        last = torch.from_numpy(q).unsqueeze(0)
        preds.append((last.max(1).indices.to(device), last if want_probs else None))
        variants[-1]._seconds += time.perf_counter() - t0
    if not confidence:
        return preds, None
    return preds, last[0].max(0).values.float().cpu().numpy()


def _score(variants: list[Variant] | None, preds: list[tuple], item: dict, keep: set[str] | None,
           result: EvalResult) -> None:
    """One image's label maps (and probabilities) into the variants' per-image scores (``variants`` None:
    unlabelled), its last label map into ``result.predictions`` when its name is in ``keep``, and its name into
    ``result.image_names`` last, so that a stop leaves names and matrices of the same images."""
    if variants is not None:
        target = torch.from_numpy(item["mask"]).unsqueeze(0).to(preds[0][0].device)
        for v, (pred, probs) in zip(variants, preds):
            v._scores.update(item["name"], pred, target, probs)
    if keep is not None and item["name"] in keep:
        result.predictions[item["name"]] = preds[-1][0][0].cpu().numpy()
    result.image_names.append(item["name"])
    result.num_images += 1


def _finish(variants: list[Variant], num_images: int, class_names: list[str] | None) -> None:
    """Milliseconds per image (a CRF step's including the step before it), metrics, per-image matrices and
    optional scores of each variant."""
    for k, v in enumerate(variants):
        if num_images:
            ms = 1000 * v._seconds / num_images
            if v.name.endswith("crf"):  # the CRF step's time includes producing its input
                ms += variants[k - 1].ms_per_image
            v.ms_per_image = ms
        if v._scores is not None and v._scores.confusions:
            v.metrics = v._scores.total.compute()
            v.confusions = v._scores.stacked()
            v.trimap_confusions = v._scores.stacked_trimap()
            v.extra = v._scores.extra(class_names)
            v.counts = v._scores.per_image()
        v._scores = None


def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    num_classes: int,
    preprocessing: Preprocessing | Sequence[float],
    std: Sequence[float] | None = None,
    device: str = "cpu",
    max_images: int = 0,
    keep: set[str] | None = None,
    progress: bool = True,
    desc: str = "evaluate",
    with_metrics: bool = True,
    inference: InferenceConfig | None = None,
    crf: CRFConfig | None = None,
    scores: ScoreOptions | None = None,
    cache: DistanceCache | None = None,
    class_names: list[str] | None = None,
    on_image: Callable[[dict, np.ndarray, np.ndarray], None] | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``dataset``: whole-image inference by default, or as ``inference`` says, with
    an optional dense CRF.

    When TTA or a CRF is asked for, every image is also segmented without them, and the result holds
    one :class:`Variant` per step (``plain``, ``tta``, ``crf`` / ``tta+crf``) with its metrics and
    milliseconds per image; ``metrics`` and ``predictions`` are those of the last step.

    Bad items (undecodable image, mask values outside the classes, size mismatch) are skipped and listed.

    Args:
        num_classes: the model's classes; must equal the dataset's when it is labelled.
        preprocessing: what the model expects of its input (:class:`segbench.preprocessing.Preprocessing`,
            e.g. ``loaded.info.preprocessing``); or, as before it existed, the normalisation mean (RGB, 0..1) with
            ``std``.
        std: the normalisation std, with a mean as ``preprocessing`` only.
        device: where the model runs (give it by name).
        max_images: evaluate only the first N items (0 = all).
        keep: item names whose predicted masks are returned (for side-by-side grids).
        with_metrics: accumulate metrics when the dataset is labelled (False: predictions only, e.g. a
            model trained on other classes).
        inference: mode (whole / slide / auto), window, stride and TTA; None = whole image, no TTA. Its
            window should already be resolved for the model (:meth:`InferenceConfig.for_model`).
        crf: dense CRF parameters; None = no CRF.
        scores: optional scores (boundary IoU, trimap, ECE; :class:`~segbench.metrics.per_image.ScoreOptions`);
            None = none. Per-image confusion matrices are always kept when metrics are.
        cache: trimap distance maps shared with other evaluations of the same images (e.g. other models).
        class_names: keys of the per-class optional scores (default ``"0"``, ``"1"``, ...).
        on_image: called with each evaluated item, its label map ``(H, W)`` and the largest class probability
            of each pixel ``(H, W)`` (both the last step's), as they come.

    Returns:
        :class:`EvalResult` with pixel accuracy, mean accuracy, per-class IoU and mIoU (fractions), and per
        variant the per-image confusion matrices in the order of ``image_names``.

    A stop (``KeyboardInterrupt``: SIGINT, or :class:`~segbench.errors.Terminated` on SIGTERM) is raised again
    with the result of the images scored so far as its ``partial`` attribute (the image in flight is finished
    first), which :mod:`segbench.engine.partial` saves for ``--resume``.

    Raises:
        UserError: ``crf`` is given and pydensecrf2 is not installed; a mean or std out of range.
        TypeError: ``std`` given with a :class:`~segbench.preprocessing.Preprocessing`, or a mean without it.
    """
    preprocessing = as_preprocessing(preprocessing, std)
    if crf is not None:
        require_crf()
    cfg = inference or InferenceConfig()
    model.eval().to(device)
    labelled = dataset.labelled and with_metrics
    names = ["plain"] + (["tta"] if cfg.tta else []) + ([("tta+crf" if cfg.tta else "crf")] if crf is not None else [])
    opts = scores or ScoreOptions()
    cache = cache or DistanceCache(opts.max_width)
    # masks are read with every void id mapped to IGNORE_INDEX (segbench.data.io.read_mask)
    variants = [Variant(n, _scores=ImageScores(num_classes, IGNORE_INDEX, opts, cache) if labelled else None)
                for n in names]  # fmt: skip
    want_probs = labelled and opts.ece
    n = len(dataset) if not max_images else min(max_images, len(dataset))
    result = EvalResult(None, 0, variants=variants)
    # The next images are read and decoded on a background thread while the model runs on this one, and the
    # scores of each image are accumulated on a second thread while the model runs on the next image (one
    # image in flight: the same matrices, in the same order, as accumulating here).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segbench-metrics") as scorer:
        pending = None
        try:
            for item in tqdm(prefetch(dataset, n), total=n, desc=desc, disable=not progress, unit="img", leave=False):
                if "error" in item:
                    result.skipped.append({"file": item["path"], "reason": item["error"]})
                    continue
                preds, conf = _segment_chain(model, item["image"], preprocessing, cfg, crf, device, variants,
                                             want_probs, on_image is not None)  # fmt: skip
                if pending is not None:
                    pending.result()  # re-raises a failure of the previous image's scoring
                pending = scorer.submit(_score, variants if labelled else None, preds, item, keep, result)
                if on_image is not None:
                    on_image(item, preds[-1][0][0].cpu().numpy(), conf)
            if pending is not None:
                pending.result()
        except KeyboardInterrupt as stop:
            if pending is not None:
                wait([pending])  # the image being scored is finished: its name and matrices both count
            stop.partial = _finished(variants, result, labelled, class_names)
            raise
    return _finished(variants, result, labelled, class_names)


def _finished(variants: list[Variant], result: EvalResult, labelled: bool, class_names: list[str] | None) -> EvalResult:
    """``result`` with its variants' metrics, per-image matrices and scores of the images scored."""
    _finish(variants, result.num_images, class_names)
    if labelled:
        result.metrics = variants[-1].metrics
    return result
