"""A roofline per benchmark row: FLOPs and bytes moved per forward, the arithmetic intensity, and the bound
``min(peak, intensity x bandwidth)`` the row's measured rate is read against (Williams, Waterman and Patterson,
"Roofline", CACM 52(4), 2009).

Bytes counted (:func:`count_cost`), in one forward pass at batch 1 under the same ``FlopCounterMode`` that counts
the FLOPs, with a forward hook on every leaf module (a module without children):

* the weights once: every parameter and floating buffer (BatchNorm's running statistics), shared tensors once;
  integer buffers (``num_batches_tracked``) are never read in eval and are left out;
* each leaf module call's input and output tensors (an in-place ReLU counts its tensor twice: read and written).
  Functional operations between modules (``torch.cat``, ``+``, ``F.interpolate`` in a ``forward``) are not
  modules and are not counted.

Every counted element takes the width of the row's precision (:data:`BYTES_PER_ELEMENT`: fp32 and tf32 4 B,
bf16 and fp16 2 B, int8 1 B) whatever dtype the backend actually stores it in (a dynamically quantised
backend keeps fp32 activations; it is still counted at its int8 width). A forward at batch ``N`` moves the
weights once and ``N`` times the activations: ``bytes_per_forward_mb = weights + N x activations``.

What the bound therefore predicts: no cache reuse is modelled, so every leaf's input and output is counted as
a trip to memory. When activations stay in cache (small inputs, small feature maps, the output of one layer
read straight back by the next) the real DRAM traffic is lower than counted, the intensity higher and the
memory ceiling pessimistic: a row can then run above its memory bound (fraction > 1). When a layer's working
set exceeds the caches, the weights and inputs are re-read (convolution tiles, im2col buffers), which this
count also leaves out, and the bound is optimistic. So the bound is an estimate of the time the row's FLOPs
and bytes need at the machine's peak and measured bandwidth, not a guarantee: a fraction near 1 says the
row is as fast as that simple model allows, a fraction far below 1 says time goes elsewhere (framework
overhead, uncounted element-wise work, layouts, threads idling).

The ceilings (:func:`add_roofline`) come from the machine's profile (:func:`segbench.bench.hardware.hardware_profile`,
``segbench hardware --json``): the theoretical peak of the row's precision (``theoretical_gflop_s``, cores x
clock x FLOPs per cycle; on CUDA the data sheet; the measured GEMM rate instead where that is higher, since a
roof below a measurement is wrong: the clock assumed was lower than the one the CPU ran at) for
``roofline_bound_gflop_s`` and ``roofline_fraction``,
the measured GEMM rate of that precision (``roofline_gemm_gflop_s``) for ``roofline_gemm_bound_gflop_s`` and
``roofline_gemm_fraction``,
and the measured STREAM triad bandwidth for the memory ceiling in both.
"""

from __future__ import annotations

import torch
from torch import nn

from segbench.bench.schema import ROOFLINE

__all__ = ["BYTES_PER_ELEMENT", "add_roofline", "count_cost", "forward_cost", "roofline_bound"]

BYTES_PER_ELEMENT = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "int8": 1}
"""Bytes per counted element in each precision (tf32 is stored as fp32)."""

ROW_KEYS = ("roofline_precision", *(f.name for f in ROOFLINE))
"""The columns :func:`add_roofline` sets on a row (:data:`segbench.bench.schema.ROOFLINE`)."""


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in a module's inputs or output (a tensor, a tuple / list of them, a dict's values)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _weight_elements(model: nn.Module) -> int:
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if not t.is_floating_point() or t.numel() == 0:
            continue
        key = (t.device, t.data_ptr(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel()
    return total


def count_cost(model: nn.Module, input_shape: tuple[int, int, int, int], precision: str = "fp32") -> dict:
    """FLOPs and bytes moved by one forward pass, counted in the same pass (see the module's docstring for which
    bytes).

    Runs one forward under ``torch.no_grad()`` in eval mode on a zero input of ``input_shape`` on the model's
    device (the train/eval mode is restored afterwards); FLOPs as :func:`segbench.bench.size.count_flops`
    (``FlopCounterMode``, 1 multiply-add = 2 FLOPs).

    Args:
        model: Module whose forward takes one ``(N, C, H, W)`` tensor.
        input_shape: ``(N, C, H, W)`` of the input.
        precision: A key of :data:`BYTES_PER_ELEMENT`: the width of every counted element.

    Returns:
        ``{"gflops", "gmacs", "bytes_weights_mb", "bytes_activations_mb", "bytes_per_forward_mb",
        "arithmetic_intensity_flop_per_byte"}`` for the whole batch (MB = 10**6 bytes; the intensity is
        FLOPs / bytes of that forward); the byte counts None for a TorchScript module (it takes no hooks).

    Raises:
        ValueError: ``input_shape`` without 4 positive entries, or an unknown ``precision``.
        Exception: Whatever the model's forward raises.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if precision not in BYTES_PER_ELEMENT:
        raise ValueError(f"precision must be one of {', '.join(BYTES_PER_ELEMENT)}, got {precision!r}")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (N, C, H, W) with positive entries, got {input_shape}")
    width = BYTES_PER_ELEMENT[precision]
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    moved = [0]

    def hook(module, inputs, output):
        moved[0] += sum(t.numel() for t in _tensors(inputs) + _tensors(output))

    handles = []
    try:
        for m in model.modules():
            if next(iter(m.children()), None) is None:
                handles.append(m.register_forward_hook(hook))
    except RuntimeError:  # a TorchScript module takes no hooks: its FLOPs are counted, its bytes are not
        for h in handles:
            h.remove()
        handles, moved = [], None
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(input_shape, device=device, dtype=dtype))
        flops = counter.get_total_flops()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if moved is None:
        return {"gflops": flops / 1e9, "gmacs": flops / 2 / 1e9, "bytes_weights_mb": None,
                "bytes_activations_mb": None, "bytes_per_forward_mb": None, "arithmetic_intensity_flop_per_byte": None}
    weights, activations = _weight_elements(model) * width, moved[0] * width
    total = weights + activations
    return {"gflops": flops / 1e9, "gmacs": flops / 2 / 1e9, "bytes_weights_mb": weights / 1e6,
            "bytes_activations_mb": activations / 1e6, "bytes_per_forward_mb": total / 1e6,
            "arithmetic_intensity_flop_per_byte": flops / total if total else None}  # fmt: skip


def forward_cost(model: nn.Module, shape: tuple[int, int, int, int], backend: str, device: str) -> dict:
    """A benchmark row's FLOPs per image and bytes per forward call: :func:`count_cost` at batch 1 in the
    precision ``backend`` computes in on ``device``, the activations then scaled to the batch ``shape[0]``.

    Returns:
        ``gflops`` and ``gmacs`` per image (batch 1); ``bytes_weights_mb``, ``bytes_activations_mb`` per image;
        ``bytes_per_forward_mb`` (weights + batch x activations) and ``arithmetic_intensity_flop_per_byte`` per
        call at ``shape[0]``; ``roofline_precision``. An unknown backend is counted in fp32 (preparing it
        records the error).
    """
    from segbench.bench.backends import get_backend
    from segbench.errors import UserError

    try:
        precision = get_backend(backend).precision_on(str(device))
    except UserError:
        precision = "fp32"
    precision = precision if precision in BYTES_PER_ELEMENT else "fp32"
    out = count_cost(model, (1, *shape[1:]), precision)
    out["roofline_precision"] = precision
    if out["bytes_weights_mb"] is None:
        return out
    batch = int(shape[0])
    total = out["bytes_weights_mb"] + batch * out["bytes_activations_mb"]
    out.update(bytes_per_forward_mb=total,
               arithmetic_intensity_flop_per_byte=batch * out["gflops"] * 1e3 / total if total else None)  # fmt: skip
    return out


def roofline_bound(gflop: float, intensity_flop_per_byte: float, peak_gflop_s: float, bandwidth_gb_s: float,
                   achieved_gflop_s: float | None = None) -> dict:  # fmt: skip
    """The roofline bound of one forward: ``min(peak, intensity x bandwidth)``.

    Args:
        gflop: 10**9 FLOPs of the forward (the whole batch).
        intensity_flop_per_byte: FLOPs / bytes moved.
        peak_gflop_s: Compute ceiling, GFLOP/s.
        bandwidth_gb_s: Memory ceiling's slope, GB/s (10**9 bytes).
        achieved_gflop_s: The measured rate, GFLOP/s (None: no fraction).

    Returns:
        ``{"bound_gflop_s", "bound_ms" (the forward's FLOPs at the bound rate), "ceiling" ("compute" or
        "memory"; "compute" at the ridge point itself), "ridge_flop_per_byte" (peak / bandwidth),
        "fraction" (achieved / bound, or None)}``.

    Raises:
        ValueError: A non-positive intensity, peak or bandwidth, or negative FLOPs.
    """
    if min(intensity_flop_per_byte, peak_gflop_s, bandwidth_gb_s) <= 0 or gflop < 0:
        raise ValueError(f"roofline needs positive intensity, peak and bandwidth and FLOPs >= 0, got "
                         f"{intensity_flop_per_byte}, {peak_gflop_s}, {bandwidth_gb_s}, {gflop}")  # fmt: skip
    memory = intensity_flop_per_byte * bandwidth_gb_s
    bound = min(peak_gflop_s, memory)
    return {"bound_gflop_s": bound, "bound_ms": gflop / bound * 1e3,
            "ceiling": "compute" if peak_gflop_s <= memory else "memory",
            "ridge_flop_per_byte": peak_gflop_s / bandwidth_gb_s,
            "fraction": achieved_gflop_s / bound if achieved_gflop_s else None}  # fmt: skip


def _ceilings(profile: dict | None, precision: str) -> tuple[float | None, float | None, float | None, str | None]:
    """(compute ceiling, measured GEMM rate, triad bandwidth, reason when one needed is missing). The ceiling is the
    theoretical peak, or the measured GEMM rate where that is higher (``theoretical_below_measured`` in the profile:
    the peak's clock, e.g. a VM's nominal ``cpu MHz``, was below the one the CPU ran at)."""
    if not profile:
        return None, None, None, "no hardware profile (segbench benchmark --no-probe)"
    entry = (profile.get("precisions") or {}).get(precision) or {}
    peak = entry.get("theoretical_gflop_s")
    gemm = (entry.get("measured") or {}).get("gflop_s")
    bandwidth = (profile.get("memory_bandwidth") or {}).get("triad_gb_s")
    if not bandwidth:
        return peak, gemm, None, "the hardware profile has no measured triad bandwidth"
    if not peak:
        return None, gemm, bandwidth, f"the hardware profile has no theoretical {precision} peak"
    if gemm and gemm > peak:  # the theoretical peak assumed a lower clock than the CPU ran at: no roof below a measurement
        peak = gemm
    return peak, gemm, bandwidth, None


def add_roofline(row: dict, profile: dict | None) -> None:
    """The roofline columns (:data:`ROW_KEYS`) into a benchmark row, from its ``gflops``, ``batch``,
    ``arithmetic_intensity_flop_per_byte``, ``achieved_gflop_s`` and ``roofline_precision`` and the machine's
    ``profile`` (:func:`segbench.bench.hardware.hardware_profile`); every column None and ``roofline_error``
    one line when the row has no FLOP or byte count or the profile lacks a peak or the bandwidth."""
    precision = row.get("roofline_precision") or "fp32"
    peak, gemm, bandwidth, reason = _ceilings(profile, precision)
    row.update(dict.fromkeys(ROW_KEYS), roofline_precision=precision, roofline_peak_gflop_s=peak,
               roofline_gemm_gflop_s=gemm, roofline_bandwidth_gb_s=bandwidth)  # fmt: skip
    intensity, gflops = row.get("arithmetic_intensity_flop_per_byte"), row.get("gflops")
    if row.get("error"):
        reason = "the case failed"
    elif not intensity or gflops is None:
        reason = ("no FLOP and byte count (FlopCounterMode sees PyTorch operators only; a TorchScript module "
                  "takes no hooks to count bytes)")
    if reason:
        row["roofline_error"] = reason
        return
    call_gflop = gflops * int(row.get("batch") or 1)
    theory = roofline_bound(call_gflop, intensity, peak, bandwidth, row.get("achieved_gflop_s"))
    row.update(roofline_bound_gflop_s=theory["bound_gflop_s"], roofline_bound_ms=theory["bound_ms"],
               roofline_ceiling=theory["ceiling"], roofline_fraction=theory["fraction"])  # fmt: skip
    if gemm:
        measured = roofline_bound(call_gflop, intensity, gemm, bandwidth, row.get("achieved_gflop_s"))
        row.update(roofline_gemm_bound_gflop_s=measured["bound_gflop_s"], roofline_gemm_fraction=measured["fraction"])
