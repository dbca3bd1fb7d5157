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

``last.pt`` holds everything an exact resume needs: model, optimizer, schedule, gradient scaler, the
RNG states of every process, the iteration and the resolved config; it is written atomically and
metrics rows past it are dropped on resume. Checkpoints written before these keys existed resume too.

Run folder: ``config.yaml`` (resolved), ``metrics.csv``, ``last.pt``, ``best.pt``, ``tb/``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from segbench.classes import IGNORE_INDEX
from segbench.config import TrainConfig, config_to_dict
from segbench.data.datasets import SegmentationDataset, open_dataset, select_groups
from segbench.data.io import write_bytes_atomic
from segbench.data.loader import RankSampler, SeededSamples, collate_pairs
from segbench.data.transforms import normalize, to_tensor_pair, train_transform
from segbench.engine import distributed as dist_utils
from segbench.engine.checkpoint import save_checkpoint
from segbench.engine.evaluate import evaluate
from segbench.engine.optim import build_optimizer, poly_lr
from segbench.errors import UserError
from segbench.losses import SegLoss, inverse_log_weights, median_frequency_weights
from segbench.metrics import ConfusionMatrix, SegMetrics
from segbench.models import MODELS, build_model, load_model
from segbench.models.weights import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CSV_FIELDS", "load_matching", "median_frequency_weights", "poly_lr", "train"]

CSV_FIELDS = [
    "iter", "epoch", "loss", "lr", "miou", "pixel_accuracy", "mean_accuracy", "elapsed_s", "img_s", "data_wait_pct",
]  # fmt: skip
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


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list]:
    """Load the tensors of ``state`` whose name and shape match ``model``; leave the rest as built.

    Used for fine-tuning with another number of classes: the classifier (and auxiliary head) keep their
    fresh initialisation, everything else loads.

    Returns:
        ``{"loaded": [names], "shape_mismatch": [(name, source shape, model shape)],
        "missing": [model names absent from state], "unexpected": [state names absent from the model]}``.
    """
    own = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    mismatch = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and k not in loaded]
    model.load_state_dict(loaded, strict=False)
    return {
        "loaded": list(loaded),
        "shape_mismatch": mismatch,
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
    }


def _init_report(source: str, result: dict, num_classes: int) -> str:
    def names(keys):
        return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    total = len(result["loaded"]) + len(result["shape_mismatch"]) + len(result["missing"])
    parts = [f"model.init: loaded {len(result['loaded'])} of {total} tensors from {source}"]
    if result["shape_mismatch"]:
        shapes = [f"{k} {list(a)} -> {list(b)}" for k, a, b in result["shape_mismatch"]]
        parts.append(f"rebuilt for {num_classes} classes (shape differs): {names(shapes)}")
    if result["missing"]:
        parts.append(f"not in the source, freshly initialised: {names(result['missing'])}")
    if result["unexpected"]:
        parts.append(f"in the source but not in the model, unused: {names(result['unexpected'])}")
    return "; ".join(parts)


def _load_encoder(model: nn.Module, source: str) -> str:
    """Load the encoder of the network in ``source`` (weights tag or checkpoint) into ``model.encoder``.

    Raises:
        UserError: the source cannot be read, its encoder is of another class, or none of its tensors fit.
    """
    with torch.random.fork_rng(devices=[]):  # building the source must not shift the training RNG
        loaded = load_model(source)
    theirs, ours = getattr(loaded.model, "encoder", None), getattr(model, "encoder", None)
    if theirs is None or ours is None or type(theirs) is not type(ours):
        raise UserError(
            f"model.encoder_init: {source} ({loaded.info.arch}) has a {type(theirs).__name__} encoder, "
            f"the model needs a {type(ours).__name__}"
        )
    result = load_matching(ours, theirs.state_dict())
    if not result["loaded"]:
        raise UserError(f"model.encoder_init: no encoder tensor of {source} fits")
    report = _init_report(loaded.info.name, result, 0).replace("model.init:", "model.encoder_init:", 1)
    return report.replace(" tensors from", " encoder tensors from", 1)


def _initial_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, str | None]:
    """The network to train and, with ``model.init``, a one-line report of what was loaded."""
    name, init = cfg.model.name, cfg.model.init
    model = build_model(name, num_classes=num_classes, aux_loss=cfg.model.aux_loss)
    if cfg.model.encoder_init != "none":
        if init != "none":
            raise UserError("model.init and model.encoder_init: set one of them, not both")
        return model, _load_encoder(model, cfg.model.encoder_init)
    if init == "none":
        return model, None
    is_file = Path(init).is_file() or init.endswith((".pt", ".pth", ".safetensors"))
    arch_of_tag = init.partition(".")[0]
    if not is_file and "." in init and arch_of_tag in MODELS.names() and arch_of_tag != name:
        raise UserError(f"model.init: {init} holds {arch_of_tag} weights but model.name is {name}")
    with torch.random.fork_rng(devices=[]):  # building the source must not shift the training RNG
        loaded = load_model(init) if (not is_file and init.startswith(name + ".")) else load_model(name, weights=init)
    if loaded.info.arch != name:
        raise UserError(f"model.init: {init} holds {loaded.info.arch} weights but model.name is {name}")
    result = load_matching(model, loaded.model.state_dict())
    if not result["loaded"]:
        raise UserError(f"model.init: no tensor of {init} fits {name}")
    return model, _init_report(loaded.info.name, result, num_classes)


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


def _tensorboard(out: Path, purge_step: int | None):
    """A SummaryWriter on ``out/tb`` (events past ``purge_step`` dropped), or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        tqdm.write(
            "TensorBoard logging is off: the tensorboard package is not installed (pip install 'segbench[tensorboard]')"
        )
        return None
    return SummaryWriter(str(out / "tb"), purge_step=purge_step)


def _rewrite_metrics(path: Path, upto_iter: int) -> None:
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


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _record_resume(out: Path, iteration: int, saved: dict | None, current: dict, say) -> None:
    """Keep ``config.yaml`` equal to the settings in force, and log what a resume changed.

    A resume may change settings (a longer schedule with ``--set iters=N``, more threads, bf16); the run
    folder then says so: ``config.yaml`` is rewritten with the new settings and ``resumes.yaml`` gets one
    entry ``{iteration, changed: {key: [old, new]}}``, which the model card reports.
    """
    if saved is None:
        return
    before, after = _flatten(saved), _flatten(current)
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


def _train(cfg: TrainConfig, resume: bool, progress: bool, out: Path, last_path: Path, dinfo) -> dict:
    _check_options(cfg, dinfo)
    main, device = dinfo.is_main, dinfo.device
    say = tqdm.write if main else (lambda *_: None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # --- data: training images in memory, augmented per batch; validation read per image
    train_ds = open_dataset(cfg.data.root, cfg.data.train_split)
    val_ds = open_dataset(cfg.data.root, cfg.data.val_split)
    if cfg.data.val_groups:
        train_ds = select_groups(train_ds, cfg.data.split_by, cfg.data.val_groups, keep=False)
        val_ds = select_groups(val_ds, cfg.data.split_by, cfg.data.val_groups, keep=True)
        say(f"split_by {cfg.data.split_by!r}: {len(train_ds)} training and {len(val_ds)} validation files, "
            f"validation groups {', '.join(cfg.data.val_groups)}")  # fmt: skip
    if not train_ds.labelled:
        raise UserError(f"{cfg.data.root}: split {cfg.data.train_split!r} has no labels to train on")
    class_set = train_ds.class_set
    num_classes = class_set.num_classes
    images, masks, skipped = _load_split(train_ds, cfg.data.train_split, progress and main)
    if not images:
        raise UserError(f"{cfg.data.root}: no usable training images ({len(skipped)} skipped)")
    short_side = int(np.median([min(im.shape[-2:]) for im in images]))
    augment = train_transform(
        tuple(cfg.data.crop_size), tuple(cfg.data.scale_range), cfg.data.hflip, short_side, cfg.data.photometric,
        brightness_range=tuple(cfg.data.brightness_range), gamma_range=tuple(cfg.data.gamma_range) or None,
        blur_prob=cfg.data.blur_prob, noise_std=cfg.data.noise_std,
    )

    # --- model, loss, optimiser
    model, init_report = _initial_model(cfg, num_classes)
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
        class_weights = CLASS_WEIGHTING[cfg.class_weighting](masks, num_classes).to(device)
    try:
        criterion = SegLoss(**vars(cfg.loss), class_weights=class_weights, ignore_index=IGNORE_INDEX)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    optimizer, group_names, lr_mults = build_optimizer(model, cfg.optim)
    # the schedule is a function of the iteration; the checkpoint records its parameters
    schedule = {"base_lr": cfg.optim.lr, "power": cfg.optim.poly_power, "warmup_iters": cfg.optim.warmup_iters,
                "iters": cfg.iters, "groups": group_names, "lr_mults": lr_mults}  # fmt: skip
    amp_dtype = AMP_DTYPES[cfg.amp]
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
    meta = {
        "arch": cfg.model.name,
        "num_classes": num_classes,
        "class_names": list(class_set.names),
        "palette": [list(c) for c in class_set.palette],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "config": config_to_dict(cfg),
    }

    # --- resume (checkpoints from before the scheduler/scaler keys existed load too)
    start_iter, best_miou, elapsed_before, last_val = 0, -1.0, 0.0, None
    if resume:
        state = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:
            raise UserError(
                f"{last_path}: the optimizer state does not fit optim.* ({exc}); resume with the run's settings"
            ) from None
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        start_iter, best_miou = state["iteration"], state["best_miou"]
        elapsed_before = state.get("elapsed_s", 0.0)
        last_val = state.get("meta", {}).get("val")
        per_rank = state.get("rng_per_rank")
        _set_rng_state(per_rank[dinfo.rank] if per_rank and len(per_rank) == dinfo.world_size else state["rng"], device)
        if main:
            _rewrite_metrics(out / "metrics.csv", start_iter)
            _record_resume(out, start_iter, state.get("meta", {}).get("config"), config_to_dict(cfg), say)
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())
        write_bytes_atomic(out / "metrics.csv", (",".join(CSV_FIELDS) + "\n").encode())
        if skipped:
            write_bytes_atomic(out / "skipped.txt", "".join(f"{s['file']}\t{s['reason']}\n" for s in skipped).encode())
    if dinfo.distributed:
        if not resume:  # dropout masks differ between processes; the weights are rank 0's (DDP broadcasts them)
            torch.manual_seed(cfg.seed + dinfo.rank)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    raw_model = model.module if dinfo.distributed else model
    writer = _tensorboard(out, start_iter if resume else None) if (main and cfg.tensorboard) else None

    # --- the batch stream
    if cfg.data.num_workers > 0 or dinfo.distributed:
        loader = torch.utils.data.DataLoader(
            SeededSamples(images, masks, augment, cfg.seed),
            batch_size=cfg.batch_size // dinfo.world_size,
            sampler=RankSampler(start_iter, cfg.iters, cfg.batch_size, dinfo.rank, dinfo.world_size),
            num_workers=cfg.data.num_workers,
            collate_fn=collate_pairs,
            pin_memory=device.type == "cuda",
            generator=torch.Generator(),  # the loader's own seed draw must not touch the global RNG
            prefetch_factor=4 if cfg.data.num_workers else None,
        )
        batches = iter(loader)
    else:
        batches = _inline_batches(images, masks, augment, cfg.batch_size)

    steps_per_epoch = max(1, len(images) // cfg.batch_size)
    t0 = time.perf_counter()
    loss_sum, loss_count, images_seen, step_time, data_time = 0.0, 0, 0, 0.0, 0.0
    total_step, total_data, total_images = 0.0, 0.0, 0
    model.train()
    bar = tqdm(
        range(start_iter, cfg.iters), initial=start_iter, total=cfg.iters, desc="train", disable=not (progress and main)
    )
    for it in bar:
        t_start = time.perf_counter()
        lr = poly_lr(cfg.optim.lr, it, cfg.iters, cfg.optim.poly_power, cfg.optim.warmup_iters)
        for g, mult in zip(optimizer.param_groups, lr_mults):
            g["lr"] = lr * mult
        images_u8, target = next(batches)  # waiting for data: the batch and its copy to the device
        images_u8, y = images_u8.to(device, non_blocking=True), target.to(device, non_blocking=True).long()
        t_data = time.perf_counter()
        x = normalize(images_u8, IMAGENET_MEAN, IMAGENET_STD)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with autocast:
            logits, aux = model(x, with_aux=True)
        loss, _ = criterion(logits.float(), y)
        if aux is not None:
            loss = loss + cfg.aux_weight * criterion(aux.float(), y)[0]
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise UserError(f"loss is {loss_value} at iteration {it}; lower optim.lr (or set optim.grad_clip_norm)")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.grad_clip_norm > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()

        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_end = time.perf_counter()
        step_time += t_end - t_start
        data_time += t_data - t_start
        loss_sum += loss_value
        loss_count += 1
        images_seen += cfg.batch_size
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", best_miou=f"{max(best_miou, 0) * 100:.1f}")

        # --- log, validate, checkpoint
        done = it + 1
        validate_now = done % cfg.val_every == 0 or done == cfg.iters
        checkpoint_now = validate_now or (cfg.ckpt_every and done % cfg.ckpt_every == 0)
        row = None
        if done % cfg.log_every == 0 or validate_now:
            mean_loss, mean_data, mean_step = dist_utils.all_reduce_mean(
                [loss_sum / max(loss_count, 1), data_time, step_time], device
            )
            row = {
                "iter": done,
                "epoch": f"{done / steps_per_epoch:.2f}",
                "loss": f"{mean_loss:.4f}",
                "lr": f"{lr:.6g}",
                "elapsed_s": f"{elapsed_before + time.perf_counter() - t0:.1f}",
                "img_s": f"{images_seen / max(mean_step, 1e-9):.2f}",
                "data_wait_pct": f"{100 * mean_data / max(mean_step, 1e-9):.1f}",
            }
            total_step += mean_step
            total_data += mean_data
            total_images += images_seen
            if writer is not None:
                writer.add_scalar("train/loss", mean_loss, done)
                writer.add_scalar("train/lr", lr, done)
                writer.add_scalar("train/img_s", float(row["img_s"]), done)
                writer.add_scalar("train/data_wait_pct", float(row["data_wait_pct"]), done)
            loss_sum, loss_count, images_seen, step_time, data_time = 0.0, 0, 0, 0.0, 0.0
        improved = False
        if validate_now:
            m = _validate(raw_model, val_ds, num_classes, cfg, dinfo)
            model.train()
            row.update(
                miou=f"{m.miou:.4f}", pixel_accuracy=f"{m.pixel_accuracy:.4f}", mean_accuracy=f"{m.mean_accuracy:.4f}"
            )
            say(f"iter {done}: val mIoU {m.miou * 100:.2f}  pixel acc {m.pixel_accuracy * 100:.2f}")
            if writer is not None:
                for key in ("miou", "pixel_accuracy", "mean_accuracy"):
                    writer.add_scalar(f"val/{key}", getattr(m, key), done)
            improved = m.miou > best_miou
            best_miou = max(best_miou, m.miou)
            last_val = m.to_dict(list(class_set.names))
        if row is not None and main:
            with open(out / "metrics.csv", "a", newline="") as f:
                csv.DictWriter(f, CSV_FIELDS, lineterminator="\n").writerow(row)
        if checkpoint_now:
            rng_all = dist_utils.all_gather_object(_rng_state(device))
            if main:
                state = {
                    "model": raw_model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": {"name": "poly", **schedule, "next_iter": done},
                    "scaler": scaler.state_dict(),
                    "iteration": done,
                    "best_miou": best_miou,
                    "elapsed_s": elapsed_before + time.perf_counter() - t0,
                    "rng": rng_all[0],
                    "rng_per_rank": rng_all,
                    "world_size": dinfo.world_size,
                    "meta": {**meta, "iteration": done, **({"val": last_val} if last_val else {})},
                }
                if improved:
                    save_checkpoint(out / "best.pt", state)
                save_checkpoint(last_path, state)
            dist_utils.barrier()
    bar.close()
    if writer is not None:
        writer.close()
    return {
        "out_dir": str(out),
        "best_miou": best_miou,
        "iters": cfg.iters,
        "elapsed_s": elapsed_before + time.perf_counter() - t0,
        "skipped": skipped,
        "init_report": init_report,
        "img_s": total_images / total_step if total_step else None,
        "data_wait_pct": 100 * total_data / total_step if total_step else None,
        "rank": dinfo.rank,
        "world_size": dinfo.world_size,
    }
