"""The training loop, readable top to bottom.

Set-up: load the training images into memory, build the model (random, or from ``model.init`` with the
classifier rebuilt when the class count differs), the optimiser (SGD or AdamW, backbone/head groups,
no decay on norm and bias) and the loss mix (CE, OHEM CE, Dice; class weights from the labels); join
the process group when launched by torchrun (DDP, gloo on CPU, NCCL on CUDA, optional SyncBatchNorm).

Each iteration: set the poly learning rate (with warm-up) on every group; take a batch (augmented in
the training process, or by DataLoader workers from the seeded stream of
:mod:`segbench.data.loader`); forward under autocast when ``amp`` asks for it; loss on the main and
auxiliary logits; backward (through a gradient scaler for fp16); clip; step. Every ``log_every``
iterations a row goes to ``metrics.csv`` (and TensorBoard): mean loss, lr, training img/s and the share
of step time spent waiting for data. Every ``val_every`` iterations the model is validated (the
confusion matrix summed over processes) and ``last.pt`` written (``best.pt`` when mIoU improves);
``ckpt_every`` writes ``last.pt`` in between.

``last.pt`` holds everything an exact resume needs (:mod:`segbench.engine.state`); it is written atomically
and metrics rows past it are dropped on resume. Run folder (:mod:`segbench.engine.log`): ``config.yaml``
(resolved), ``metrics.csv``, ``resumes.yaml``, ``last.pt``, ``best.pt``, ``tb/``.

Sections, in the order they run: :func:`_check_options`, :func:`_seed_and_threads`, :func:`_prepare_data`,
:func:`_build_setup` (model, loss, optimiser), :func:`_resume_or_start`, :func:`_batch_stream`, then
:func:`_loop` (:func:`_step`, :func:`_metrics_row`, :func:`_validate_into`, :func:`_save_checkpoint`).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from segbench.classes import IGNORE_INDEX
from segbench.config import TrainConfig, config_to_dict
from segbench.data.datasets import SegmentationDataset, open_dataset, select_groups
from segbench.data.loader import RankSampler, SeededSamples, collate_pairs
from segbench.data.transforms import normalize, to_tensor_pair, train_transform
from segbench.engine import distributed as dist_utils
from segbench.engine.checkpoint import save_checkpoint
from segbench.engine.evaluate import evaluate
from segbench.engine.init import initial_model, load_matching
from segbench.engine.log import (
    CSV_FIELDS,
    VAL_SCALARS,
    add_scalars,
    append_metrics,
    record_resume,
    rewrite_metrics,
    start_run_folder,
    tensorboard,
)
from segbench.engine.optim import build_optimizer, poly_lr
from segbench.engine.state import ResumePoint, read_state, restore, rng_state, training_state
from segbench.errors import UserError
from segbench.losses import SegLoss, inverse_log_weights, median_frequency_weights
from segbench.metrics import ConfusionMatrix, SegMetrics
from segbench.models.weights import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CSV_FIELDS", "load_matching", "median_frequency_weights", "poly_lr", "train"]

CLASS_WEIGHTING = {"none": None, "median_frequency": median_frequency_weights, "inverse_log": inverse_log_weights}
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _load_split(ds: SegmentationDataset, split: str, progress: bool) -> tuple[list, list, list[dict]]:
    images, masks, skipped = [], [], []
    for i in tqdm(range(len(ds)), desc=f"loading {split}", unit="img", leave=False, disable=not progress):
        item = ds[i]
        if "error" in item:
            skipped.append({"file": item["path"], "reason": item["error"]})
            continue
        img, mask = to_tensor_pair(item["image"], item["mask"])
        images.append(img)
        masks.append(mask)
    return images, masks, skipped


def _inline_batches(images: list, masks: list, augment, batch_size: int):
    """segbench's original stream: indices drawn with replacement and augmented in this process, all
    from the global RNG (whose state the checkpoint carries). Yields ``(N, 3, h, w)``, ``(N, h, w)`` uint8."""
    n = len(images)
    while True:
        idx = torch.randint(0, n, (batch_size,)).tolist()
        pairs = [augment(images[i], masks[i]) for i in idx]
        yield torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _validate(model: nn.Module, val_ds: SegmentationDataset, num_classes: int, cfg: TrainConfig, dinfo) -> SegMetrics:
    """mIoU on the validation split; each process takes every world_size-th image and the confusion
    matrices are summed over processes."""
    if not dinfo.distributed:
        return evaluate(model, val_ds, num_classes, IMAGENET_MEAN, IMAGENET_STD, dinfo.device,
                        max_images=cfg.data.val_max_images, progress=False).metrics  # fmt: skip
    n = len(val_ds) if not cfg.data.val_max_images else min(cfg.data.val_max_images, len(val_ds))
    shard = SegmentationDataset(val_ds.pairs[:n][dinfo.rank :: dinfo.world_size], val_ds.class_set, val_ds.void_ids)
    res = evaluate(model, shard, num_classes, IMAGENET_MEAN, IMAGENET_STD, dinfo.device, progress=False)
    cm = ConfusionMatrix(num_classes, device=dinfo.device)
    if res.metrics is not None:
        cm.mat = torch.tensor(res.metrics.confusion, dtype=torch.int64, device=dinfo.device)
    cm.all_reduce()
    return cm.compute()


def _check_options(cfg: TrainConfig, dinfo) -> None:
    for key in ("iters", "batch_size", "val_every", "log_every"):
        if getattr(cfg, key) < 1:
            raise UserError(f"{key}: must be at least 1, got {getattr(cfg, key)}")
    for key, value in (("ckpt_every", cfg.ckpt_every), ("data.num_workers", cfg.data.num_workers)):
        if value < 0:
            raise UserError(f"{key}: must be 0 or more, got {value}")
    if cfg.class_weighting not in CLASS_WEIGHTING:
        raise UserError(
            f"class_weighting: expected one of {', '.join(map(repr, CLASS_WEIGHTING))}, got {cfg.class_weighting!r}"
        )
    if cfg.amp not in AMP_DTYPES:
        raise UserError(f"amp: expected one of {', '.join(AMP_DTYPES)}, got {cfg.amp!r}")
    if cfg.amp == "fp16" and dinfo.device.type != "cuda":
        raise UserError("amp: fp16 needs CUDA (it trains with a gradient scaler there); use amp=bf16 on CPU")
    if cfg.batch_size % dinfo.world_size:
        raise UserError(
            f"batch_size: the global batch {cfg.batch_size} must divide evenly over {dinfo.world_size} processes"
        )
    if not cfg.data.root:
        raise UserError("data.root: set the dataset folder (in the recipe or with --set data.root=DIR)")
    if cfg.data.val_groups and not cfg.data.split_by:
        raise UserError("data.val_groups: needs data.split_by, the pattern that names each file's group")
    _check_range("data.brightness_range", cfg.data.brightness_range, low=0.0, size=2)
    if cfg.data.gamma_range:
        _check_range("data.gamma_range", cfg.data.gamma_range, low=0.0, size=2)
    if not 0.0 <= cfg.data.blur_prob <= 1.0:
        raise UserError(f"data.blur_prob: must be within 0..1, got {cfg.data.blur_prob}")
    if cfg.data.noise_std < 0:
        raise UserError(f"data.noise_std: must be 0 or more, got {cfg.data.noise_std}")


def _check_range(key: str, values: list, low: float, size: int) -> None:
    """Raise a :class:`UserError` naming ``key`` unless it holds ``size`` ascending values above ``low``."""
    if len(values) != size or any(v <= low for v in values) or values != sorted(values):
        raise UserError(f"{key}: expected {size} ascending values above {low:g}, got {values}")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg.model.name`` on ``cfg.data.root``; returns a summary dict (best mIoU, paths, timings).

    In a torchrun launch every process calls this; rank 0 writes the run folder and prints.

    Returns:
        ``{"out_dir", "best_miou", "iters", "elapsed_s", "skipped", "init_report", "img_s",
        "data_wait_pct", "rank", "world_size"}``; ``img_s`` (training images per second over all
        processes) and ``data_wait_pct`` (share of step time spent waiting for the batch) cover this
        call's iterations.

    Raises:
        UserError: missing data, an existing run folder without ``resume``, bad options, a diverging loss.
    """
    out = Path(cfg.out_dir)
    last_path = out / "last.pt"
    if last_path.exists() and not resume:
        raise UserError(f"{out}: a run already exists there; pass --resume to continue it or choose another out_dir")
    if resume and not last_path.exists():
        raise UserError(f"{last_path}: nothing to resume")
    dinfo = dist_utils.init_distributed(cfg.device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(cfg, resume, progress, out, last_path, dinfo)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        dist_utils.cleanup()




@dataclass
class _Data:
    """The training images in memory (``(3, H, W)`` uint8 and ``(H, W)`` uint8 masks), their augmentation, the
    validation split (read per image) and the files skipped while loading."""

    images: list
    masks: list
    skipped: list[dict]
    augment: object
    val_ds: SegmentationDataset
    class_set: object


@dataclass
class _Setup:
    """The model, its loss, optimiser, schedule, gradient scaler and the checkpoint's ``meta``."""

    model: nn.Module
    init_report: str | None
    criterion: SegLoss
    optimizer: torch.optim.Optimizer
    lr_mults: list[float]
    schedule: dict
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    meta: dict


@dataclass
class _Meter:
    """Losses and step timings since the last metrics row, and the totals over this call."""

    loss_sum: float = 0.0
    loss_count: int = 0
    images: int = 0
    step_s: float = 0.0
    data_s: float = 0.0
    total_step_s: float = 0.0
    total_data_s: float = 0.0
    total_images: int = 0

    def add(self, loss: float, step_s: float, data_s: float, images: int) -> None:
        self.step_s += step_s
        self.data_s += data_s
        self.loss_sum += loss
        self.loss_count += 1
        self.images += images

    def flush(self, device: torch.device) -> tuple[float, float, float, int]:
        """``(mean loss, data seconds, step seconds, images)`` of the window (means over processes); starts a
        new window."""
        mean_loss, mean_data, mean_step = dist_utils.all_reduce_mean(
            [self.loss_sum / max(self.loss_count, 1), self.data_s, self.step_s], device
        )
        images = self.images
        self.total_step_s += mean_step
        self.total_data_s += mean_data
        self.total_images += images
        self.loss_sum, self.loss_count, self.images, self.step_s, self.data_s = 0.0, 0, 0, 0.0, 0.0
        return mean_loss, mean_data, mean_step, images


@dataclass
class _Run:
    """Everything the loop reads and updates."""

    cfg: TrainConfig
    dinfo: object
    data: _Data
    setup: _Setup
    model: nn.Module  # the DDP wrapper in a torchrun launch, else the model itself
    out: Path
    last_path: Path
    say: object
    point: ResumePoint
    writer: object = None
    meter: _Meter = field(default_factory=_Meter)
    t0: float = 0.0

    @property
    def raw_model(self) -> nn.Module:
        return self.model.module if self.dinfo.distributed else self.model

    def elapsed_s(self) -> float:
        return self.point.elapsed_s + time.perf_counter() - self.t0


def _seed_and_threads(cfg: TrainConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)


def _prepare_data(cfg: TrainConfig, say, progress: bool) -> _Data:
    """Training images in memory, augmented per batch; the validation split read per image.

    Raises:
        UserError: the training split has no labels or no usable image.
    """
    train_ds = open_dataset(cfg.data.root, cfg.data.train_split)
    val_ds = open_dataset(cfg.data.root, cfg.data.val_split)
    if cfg.data.val_groups:
        train_ds = select_groups(train_ds, cfg.data.split_by, cfg.data.val_groups, keep=False)
        val_ds = select_groups(val_ds, cfg.data.split_by, cfg.data.val_groups, keep=True)
        say(f"split_by {cfg.data.split_by!r}: {len(train_ds)} training and {len(val_ds)} validation files, "
            f"validation groups {', '.join(cfg.data.val_groups)}")  # fmt: skip
    if not train_ds.labelled:
        raise UserError(f"{cfg.data.root}: split {cfg.data.train_split!r} has no labels to train on")
    images, masks, skipped = _load_split(train_ds, cfg.data.train_split, progress)
    if not images:
        raise UserError(f"{cfg.data.root}: no usable training images ({len(skipped)} skipped)")
    short_side = int(np.median([min(im.shape[-2:]) for im in images]))
    augment = train_transform(
        tuple(cfg.data.crop_size), tuple(cfg.data.scale_range), cfg.data.hflip, short_side, cfg.data.photometric,
        brightness_range=tuple(cfg.data.brightness_range), gamma_range=tuple(cfg.data.gamma_range) or None,
        blur_prob=cfg.data.blur_prob, noise_std=cfg.data.noise_std,
    )
    return _Data(images, masks, skipped, augment, val_ds, train_ds.class_set)


def _build_setup(cfg: TrainConfig, data: _Data, dinfo, say) -> _Setup:
    """Model (on the device), loss mix with optional class weights, optimiser groups and the poly schedule.

    Raises:
        UserError: bad ``model.init``/``model.encoder_init`` or ``loss.*`` options.
    """
    num_classes, device = data.class_set.num_classes, dinfo.device
    model, init_report = initial_model(cfg, num_classes)
    if init_report:
        say(init_report)
    if cfg.sync_bn and dinfo.distributed:
        model = dist_utils.convert_sync_batchnorm(model, device)
    elif cfg.sync_bn:
        say("sync_bn: a single process, so batch-norm statistics are the batch's as without it")
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    class_weights = None
    if CLASS_WEIGHTING[cfg.class_weighting] is not None:
        class_weights = CLASS_WEIGHTING[cfg.class_weighting](data.masks, num_classes).to(device)
    try:
        criterion = SegLoss(**vars(cfg.loss), class_weights=class_weights, ignore_index=IGNORE_INDEX)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    optimizer, group_names, lr_mults = build_optimizer(model, cfg.optim)
    # the schedule is a function of the iteration; the checkpoint records its parameters
    schedule = {"base_lr": cfg.optim.lr, "power": cfg.optim.poly_power, "warmup_iters": cfg.optim.warmup_iters,
                "iters": cfg.iters, "groups": group_names, "lr_mults": lr_mults}  # fmt: skip
    meta = {
        "arch": cfg.model.name,
        "num_classes": num_classes,
        "class_names": list(data.class_set.names),
        "palette": [list(c) for c in data.class_set.palette],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "config": config_to_dict(cfg),
    }
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
    return _Setup(model, init_report, criterion, optimizer, lr_mults, schedule, AMP_DTYPES[cfg.amp], scaler, meta)


def _resume_or_start(cfg: TrainConfig, resume: bool, out: Path, last_path: Path, setup: _Setup, data: _Data,
                     dinfo, say) -> ResumePoint:  # fmt: skip
    """Restore ``last.pt`` (and trim ``metrics.csv`` to it), or start the run folder."""
    if not resume:
        if dinfo.is_main:
            start_run_folder(out, config_to_dict(cfg), data.skipped)
        return ResumePoint()
    state = read_state(last_path, dinfo.device)
    point = restore(last_path, state, setup.model, setup.optimizer, setup.scaler, dinfo.rank, dinfo.world_size,
                    dinfo.device)  # fmt: skip
    if dinfo.is_main:
        rewrite_metrics(out / "metrics.csv", point.start_iter)
        record_resume(out, point.start_iter, state.get("meta", {}).get("config"), config_to_dict(cfg), say)
    return point


def _batch_stream(cfg: TrainConfig, data: _Data, start_iter: int, dinfo):
    """Batches ``(N, 3, h, w)`` uint8 and ``(N, h, w)``: from DataLoader workers with their seeded stream
    (workers or several processes), else augmented in this process from the global RNG."""
    if cfg.data.num_workers == 0 and not dinfo.distributed:
        return _inline_batches(data.images, data.masks, data.augment, cfg.batch_size)
    loader = torch.utils.data.DataLoader(
        SeededSamples(data.images, data.masks, data.augment, cfg.seed),
        batch_size=cfg.batch_size // dinfo.world_size,
        sampler=RankSampler(start_iter, cfg.iters, cfg.batch_size, dinfo.rank, dinfo.world_size),
        num_workers=cfg.data.num_workers,
        collate_fn=collate_pairs,
        pin_memory=dinfo.device.type == "cuda",
        generator=torch.Generator(),  # the loader's own seed draw must not touch the global RNG
        prefetch_factor=4 if cfg.data.num_workers else None,
    )
    return iter(loader)


def _step(run: _Run, batches, it: int) -> tuple[float, float]:
    """One optimisation step at iteration ``it``; returns ``(loss, lr)`` and adds its timings to the meter.

    Raises:
        UserError: the loss is not finite.
    """
    cfg, setup, device = run.cfg, run.setup, run.dinfo.device
    t_start = time.perf_counter()
    lr = poly_lr(cfg.optim.lr, it, cfg.iters, cfg.optim.poly_power, cfg.optim.warmup_iters)
    for g, mult in zip(setup.optimizer.param_groups, setup.lr_mults):
        g["lr"] = lr * mult
    images_u8, target = next(batches)  # waiting for data: the batch and its copy to the device
    images_u8, y = images_u8.to(device, non_blocking=True), target.to(device, non_blocking=True).long()
    t_data = time.perf_counter()
    x = normalize(images_u8, IMAGENET_MEAN, IMAGENET_STD)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=setup.amp_dtype) if setup.amp_dtype else contextlib.nullcontext()
    with autocast:
        logits, aux = run.model(x, with_aux=True)
    loss, _ = setup.criterion(logits.float(), y)
    if aux is not None:
        loss = loss + cfg.aux_weight * setup.criterion(aux.float(), y)[0]
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise UserError(f"loss is {loss_value} at iteration {it}; lower optim.lr (or set optim.grad_clip_norm)")
    setup.optimizer.zero_grad(set_to_none=True)
    setup.scaler.scale(loss).backward()
    if cfg.optim.grad_clip_norm > 0:
        setup.scaler.unscale_(setup.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip_norm)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t_end = time.perf_counter()
    run.meter.add(loss_value, t_end - t_start, t_data - t_start, cfg.batch_size)
    return loss_value, lr


def _metrics_row(run: _Run, done: int, lr: float) -> dict:
    """The training part of a ``metrics.csv`` row (and its TensorBoard scalars) for the window ending at ``done``."""
    mean_loss, mean_data, mean_step, images = run.meter.flush(run.dinfo.device)
    steps_per_epoch = max(1, len(run.data.images) // run.cfg.batch_size)
    row = {
        "iter": done,
        "epoch": f"{done / steps_per_epoch:.2f}",
        "loss": f"{mean_loss:.4f}",
        "lr": f"{lr:.6g}",
        "elapsed_s": f"{run.elapsed_s():.1f}",
        "img_s": f"{images / max(mean_step, 1e-9):.2f}",
        "data_wait_pct": f"{100 * mean_data / max(mean_step, 1e-9):.1f}",
    }
    scalars = {"loss": mean_loss, "lr": lr, "img_s": float(row["img_s"]), "data_wait_pct": float(row["data_wait_pct"])}
    add_scalars(run.writer, "train", scalars, done)
    return row


def _validate_into(run: _Run, row: dict, done: int) -> bool:
    """Validate, add the metrics to ``row`` and the best/last records; True when mIoU improved."""
    m = _validate(run.raw_model, run.data.val_ds, run.data.class_set.num_classes, run.cfg, run.dinfo)
    run.model.train()
    row.update(miou=f"{m.miou:.4f}", pixel_accuracy=f"{m.pixel_accuracy:.4f}", mean_accuracy=f"{m.mean_accuracy:.4f}")
    run.say(f"iter {done}: val mIoU {m.miou * 100:.2f}  pixel acc {m.pixel_accuracy * 100:.2f}")
    add_scalars(run.writer, "val", {key: getattr(m, key) for key in VAL_SCALARS}, done)
    improved = m.miou > run.point.best_miou
    run.point.best_miou = max(run.point.best_miou, m.miou)
    run.point.last_val = m.to_dict(list(run.data.class_set.names))
    return improved


def _save_checkpoint(run: _Run, done: int, improved: bool) -> None:
    """``last.pt`` (and ``best.pt`` when mIoU improved) with the RNG states of every process."""
    rng_all = dist_utils.all_gather_object(rng_state(run.dinfo.device))
    if run.dinfo.is_main:
        point = ResumePoint(done, run.point.best_miou, run.elapsed_s(), run.point.last_val)
        setup = run.setup
        state = training_state(run.raw_model, setup.optimizer, setup.scaler, setup.schedule, point, rng_all,
                               run.dinfo.world_size, setup.meta)  # fmt: skip
        if improved:
            save_checkpoint(run.out / "best.pt", state)
        save_checkpoint(run.last_path, state)
    dist_utils.barrier()


def _loop(run: _Run, batches, progress: bool) -> None:
    """Iterations ``point.start_iter .. cfg.iters``: step; log, validate and checkpoint on their schedules."""
    cfg, main = run.cfg, run.dinfo.is_main
    run.t0 = time.perf_counter()
    run.model.train()
    bar = tqdm(range(run.point.start_iter, cfg.iters), initial=run.point.start_iter, total=cfg.iters, desc="train",
               disable=not (progress and main))  # fmt: skip
    for it in bar:
        loss_value, lr = _step(run, batches, it)
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", best_miou=f"{max(run.point.best_miou, 0) * 100:.1f}")
        done = it + 1
        validate_now = done % cfg.val_every == 0 or done == cfg.iters
        row = _metrics_row(run, done, lr) if (done % cfg.log_every == 0 or validate_now) else None
        improved = _validate_into(run, row, done) if validate_now else False
        if row is not None and main:
            append_metrics(run.out / "metrics.csv", row)
        if validate_now or (cfg.ckpt_every and done % cfg.ckpt_every == 0):
            _save_checkpoint(run, done, improved)
    bar.close()


def _train(cfg: TrainConfig, resume: bool, progress: bool, out: Path, last_path: Path, dinfo) -> dict:
    _check_options(cfg, dinfo)
    say = tqdm.write if dinfo.is_main else (lambda *_: None)
    _seed_and_threads(cfg)
    data = _prepare_data(cfg, say, progress and dinfo.is_main)
    setup = _build_setup(cfg, data, dinfo, say)
    point = _resume_or_start(cfg, resume, out, last_path, setup, data, dinfo, say)
    model = setup.model
    if dinfo.distributed:
        if not resume:  # dropout masks differ between processes; the weights are rank 0's (DDP broadcasts them)
            torch.manual_seed(cfg.seed + dinfo.rank)
        device = dinfo.device
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run = _Run(cfg, dinfo, data, setup, model, out, last_path, say, point)
    if dinfo.is_main and cfg.tensorboard:
        run.writer = tensorboard(out, point.start_iter if resume else None)
    _loop(run, _batch_stream(cfg, data, point.start_iter, dinfo), progress)
    if run.writer is not None:
        run.writer.close()
    meter = run.meter
    return {
        "out_dir": str(out),
        "best_miou": point.best_miou,
        "iters": cfg.iters,
        "elapsed_s": run.elapsed_s(),
        "skipped": data.skipped,
        "init_report": setup.init_report,
        "img_s": meter.total_images / meter.total_step_s if meter.total_step_s else None,
        "data_wait_pct": 100 * meter.total_data_s / meter.total_step_s if meter.total_step_s else None,
        "rank": dinfo.rank,
        "world_size": dinfo.world_size,
    }
