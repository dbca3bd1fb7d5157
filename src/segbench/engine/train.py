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
``ckpt_every`` writes ``last.pt`` in between. With ``ema_decay`` a weight average (:mod:`segbench.engine.ema`)
follows every step and is what validation measures and checkpoints hold as the model.

``last.pt`` holds everything an exact resume needs (:mod:`segbench.engine.state`); it is written atomically
and metrics rows past it are dropped on resume. Run folder (:mod:`segbench.engine.log`): ``config.yaml``
(resolved), ``metrics.csv``, ``resumes.yaml``, ``last.pt``, ``best.pt``, ``tb/``.

Sections, in the order they run: the set-up of :mod:`segbench.engine.prepare` (options, seeds, data,
model with loss and optimiser), :func:`_resume_or_start`, the batch stream, then :func:`_loop`
(:func:`_step`, :func:`_metrics_row`, :func:`_validate_into`, :func:`_save_checkpoint`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from segbench.config import TrainConfig, config_to_dict
from segbench.engine import distributed as dist_utils
from segbench.engine.checkpoint import save_checkpoint
from segbench.engine.ema import WeightEMA
from segbench.engine.init import load_matching
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
from segbench.engine.optim import poly_lr
from segbench.engine.prepare import (
    TRAIN_PREPROCESSING,
    TrainData,
    TrainSetup,
    batch_stream,
    build_setup,
    check_options,
    prepare_data,
    seed_and_threads,
    validate,
)
from segbench.engine.state import ResumePoint, read_state, restore, rng_state, training_state
from segbench.errors import UserError
from segbench.files import output_locked
from segbench.losses import median_frequency_weights

__all__ = ["CSV_FIELDS", "load_matching", "median_frequency_weights", "poly_lr", "train"]


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
    main = int(os.environ.get("RANK", "0")) == 0  # torchrun's other processes leave the run folder to rank 0
    if main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"out_dir {out}: cannot create the folder ({exc.strerror or exc})") from None
    dinfo = dist_utils.init_distributed(cfg.device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        with output_locked(out, "out_dir") if main else contextlib.nullcontext():
            return _train(cfg, resume, progress, out, last_path, dinfo)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        dist_utils.cleanup()


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
    data: TrainData
    setup: TrainSetup
    model: nn.Module  # the DDP wrapper in a torchrun launch, else the model itself
    out: Path
    last_path: Path
    say: object
    point: ResumePoint
    writer: object = None
    ema: WeightEMA | None = None  # the weight average when cfg.ema_decay > 0
    meter: _Meter = field(default_factory=_Meter)
    t0: float = 0.0

    @property
    def raw_model(self) -> nn.Module:
        return self.model.module if self.dinfo.distributed else self.model

    @property
    def eval_model(self) -> nn.Module:
        """What validation measures and checkpoints hold as ``model``: the weight average when kept."""
        return self.ema.model if self.ema is not None else self.raw_model

    def elapsed_s(self) -> float:
        return self.point.elapsed_s + time.perf_counter() - self.t0


def _resume_or_start(cfg: TrainConfig, resume: bool, out: Path, last_path: Path, setup: TrainSetup, data: TrainData,
                     dinfo, say, ema: WeightEMA | None) -> ResumePoint:  # fmt: skip
    """Restore ``last.pt`` (and trim ``metrics.csv`` to it), or start the run folder."""
    if not resume:
        if dinfo.is_main:
            start_run_folder(out, config_to_dict(cfg), data.skipped)
        return ResumePoint()
    state = read_state(last_path, dinfo.device)
    point = restore(last_path, state, setup.model, setup.optimizer, setup.scaler, dinfo.rank, dinfo.world_size,
                    dinfo.device, ema)  # fmt: skip
    if dinfo.is_main:
        rewrite_metrics(out / "metrics.csv", point.start_iter)
        record_resume(out, point.start_iter, state.get("meta", {}).get("config"), config_to_dict(cfg), say)
    return point


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
    x = TRAIN_PREPROCESSING.normalize(images_u8)
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
    if run.ema is not None:
        run.ema.update(run.raw_model, it)
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
    m = validate(run.eval_model, run.data.val_ds, run.data.class_set.num_classes, run.cfg, run.dinfo)
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
                               run.dinfo.world_size, setup.meta,
                               run.ema.state_dict() if run.ema is not None else None)  # fmt: skip
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
    check_options(cfg, dinfo)
    say = tqdm.write if dinfo.is_main else (lambda *_: None)
    seed_and_threads(cfg)
    data = prepare_data(cfg, say, progress and dinfo.is_main)
    setup = build_setup(cfg, data, dinfo, say)
    ema = WeightEMA(setup.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    point = _resume_or_start(cfg, resume, out, last_path, setup, data, dinfo, say, ema)
    model = setup.model
    if dinfo.distributed:
        if not resume:  # dropout masks differ between processes; the weights are rank 0's (DDP broadcasts them)
            torch.manual_seed(cfg.seed + dinfo.rank)
        device = dinfo.device
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run = _Run(cfg, dinfo, data, setup, model, out, last_path, say, point, ema=ema)
    if dinfo.is_main and cfg.tensorboard:
        run.writer = tensorboard(out, point.start_iter if resume else None)
    _loop(run, batch_stream(cfg, data, point.start_iter, dinfo), progress)
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
