"""The one rule "this CPU computes precision P natively with unit U", as data: per precision, the units that
can compute it, each with the ``/proc/cpuinfo`` flags it needs, ordered best first; the first unit whose flags
the CPU has is the one that computes it (:data:`UNITS`). :func:`not_native_reason` answers for this machine (its
flags read by :func:`machine_flags`, which tests replace with another CPU's). Read by the backend registry
(:mod:`segbench.bench.backends`: native or emulated, ``--backend best``) and the machine's profile
(:mod:`segbench.bench.hardware`: unit, FLOP per cycle, theoretical peak). Imports no torch at import time.

Native or emulated comes from the flags, never from a library's "supported" answer (true for bf16 wherever
oneDNN can convert to fp32). FLOP (int8: operations) per cycle per core, with their sources:

* fp32: :func:`segbench.bench.env._flops_per_cycle` (FMA units x lanes x 2 per micro-architecture).
* bf16 with AVX512-BF16: 2x the fp32 rate (``vdpbf16ps`` does 2 products + 2 adds per fp32 lane where an FMA
  does 1 + 1, at ``vfmadd`` throughput: Intel Intrinsics Guide / Agner Fog's instruction tables); fp16 with
  AVX512-FP16: 2x (twice the lanes per register).
* int8 with VNNI (``vpdpbusd``, 4 u8 x s8 products + adds per int32 lane): 4x the fp32 rate; without VNNI,
  ``vpmaddubsw`` + ``vpmaddwd`` + ``vpaddd``: taken as 2x. AVX2 int8 is native: integer instructions, no
  conversion to fp32 (FBGEMM's and oneDNN's AVX2 int8 kernels; on the Zen 3 EPYC the int8 GEMM probe measured
  200.5 giga-ops/s against fp32's 115.9 GFLOP/s, 2 threads, 2026-12-07). Without AVX2 there is no int8 kernel
  worth the name: not native.
* AMX (``amx_bf16``/``amx_fp16``: 1024, ``amx_int8``: 2048 per cycle per core): Intel 64 and IA-32
  Architectures Optimization Reference Manual, chapter "Intel Advanced Matrix Extensions".
* A precision without a unit is computed through fp32: the fp32 rate, not native.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EMULATED", "UNITS", "Unit", "computes_natively", "cpu_flags", "cpu_supports_bf16", "cpu_supports_int8",
    "flag_reason", "machine_flags", "native_flags", "not_native_reason", "precision_units", "unit_for",
]  # fmt: skip

FLOPS_SOURCE = "https://stackoverflow.com/q/15655835 (answer 15657772): FMA/cycle x lanes x 2"
AMX_SOURCE = ("Intel 64 and IA-32 Architectures Optimization Reference Manual, chapter 'Intel Advanced Matrix "
              "Extensions': 2048 INT8 / 1024 BF16 ops per cycle per core (4th Gen Xeon Scalable)")  # fmt: skip
ISA_SOURCE = "Intel Intrinsics Guide / Agner Fog's instruction tables: dot-product instructions at FMA throughput"
EMULATED = "emulated through fp32"


@dataclass(frozen=True)
class Unit:
    """One unit that can compute a precision.

    Attributes:
        flags: the cpuinfo flags it needs, all of them (empty: every CPU).
        name: what the profile shows.
        native: whether it computes the precision itself (False: through another precision's instructions).
        per_cycle: FLOP (int8: ops) per cycle per core, a fixed number; or None, then ``fp32_times`` x fp32's.
        fp32_times: multiple of the fp32 rate (when ``per_cycle`` is None).
        source: where the per-cycle figure comes from.
    """

    flags: tuple[str, ...]
    name: str
    native: bool
    per_cycle: int | None = None
    fp32_times: int = 1
    source: str = ""

    def flops_per_cycle(self, fp32_per_cycle: int | None) -> int | None:
        """FLOP (int8: ops) per cycle per core, given fp32's (None where fp32's is unknown and this unit's is
        a multiple of it)."""
        if self.per_cycle is not None:
            return self.per_cycle
        return fp32_per_cycle * self.fp32_times if fp32_per_cycle else None


_THROUGH_FP32 = Unit((), EMULATED, False, source="no unit for this precision: converted to fp32, the fp32 rate")
_NO_VNNI = "vpmaddubsw + vpmaddwd + vpaddd: taken as 2x the fp32 rate"

UNITS: dict[str, tuple[Unit, ...]] = {
    "fp32": (Unit(("avx512f",), "AVX-512 FMA", True, source=FLOPS_SOURCE),
             Unit(("avx2", "fma"), "AVX2 FMA", True, source=FLOPS_SOURCE),
             Unit(("avx",), "AVX", True, source=FLOPS_SOURCE),
             Unit((), "SSE", True, source=FLOPS_SOURCE)),
    "bf16": (Unit(("amx_bf16",), "AMX-BF16", True, per_cycle=1024, source=AMX_SOURCE),
             Unit(("avx512_bf16",), "AVX512-BF16", True, fp32_times=2, source=ISA_SOURCE),
             _THROUGH_FP32),
    "fp16": (Unit(("amx_fp16",), "AMX-FP16", True, per_cycle=1024, source=AMX_SOURCE),
             Unit(("avx512_fp16",), "AVX512-FP16", True, fp32_times=2, source=ISA_SOURCE),
             _THROUGH_FP32),
    "int8": (Unit(("amx_int8",), "AMX-INT8", True, per_cycle=2048, source=AMX_SOURCE),
             Unit(("avx512_vnni",), "AVX-512 VNNI", True, fp32_times=4, source=ISA_SOURCE),
             Unit(("avx_vnni",), "AVX-VNNI", True, fp32_times=4, source=ISA_SOURCE),
             Unit(("avx2",), "AVX2 without VNNI", True, fp32_times=2, source=_NO_VNNI),
             Unit((), "no int8 dot-product unit", False, fp32_times=2, source=_NO_VNNI)),
}  # fmt: skip
"""Per precision (the CPU's: fp32, bf16, fp16, int8), its units, best first; each list ends with one every CPU has."""


def unit_for(precision: str, flags) -> Unit:
    """The unit that computes ``precision`` on a CPU with the cpuinfo ``flags``: the first of :data:`UNITS`
    whose flags it has.

    Raises:
        KeyError: a precision not in :data:`UNITS`.
    """
    flags = set(flags)
    return next(u for u in UNITS[precision] if set(u.flags) <= flags)


def native_flags(precision: str) -> tuple[str, ...]:
    """The cpuinfo flags of the units that compute ``precision`` natively, best first (``()`` for fp32, which
    every CPU computes)."""
    if UNITS[precision][-1].native:  # its fallback is native: no flag is needed
        return ()
    return tuple(f for u in UNITS[precision] if u.native for f in u.flags)


def flag_reason(precision: str, flags) -> str | None:
    """Why a CPU with ``flags`` does not compute ``precision`` natively, in one line (``"bf16: emulated on this
    CPU (no amx_bf16/avx512_bf16)"``), or None where it does (and for a precision not in :data:`UNITS`: a
    GPU's tf32)."""
    if precision not in UNITS:
        return None
    unit = unit_for(precision, flags)
    if unit.native:
        return None
    how = "emulated" if unit.name == EMULATED else unit.name
    return f"{precision}: {how} on this CPU (no {'/'.join(native_flags(precision))})"


def precision_units(flags, fp32_per_cycle: int | None) -> dict[str, dict]:
    """Per precision, the unit that computes it, whether it is native, and FLOP (int8: ops) per cycle per core.

    Args:
        flags: The cpuinfo flags.
        fp32_per_cycle: fp32 FLOP per cycle per core (:func:`segbench.bench.env._flops_per_cycle`), or None.

    Returns:
        ``{precision: {"unit", "native", "flops_per_cycle" (None when fp32's is unknown), "source"}}`` for the
        precisions of :data:`UNITS`, in that order.
    """
    out = {}
    for precision in UNITS:
        unit = unit_for(precision, flags)
        out[precision] = {"unit": unit.name, "native": unit.native, "source": unit.source,
                          "flops_per_cycle": unit.flops_per_cycle(fp32_per_cycle)}  # fmt: skip
    return out


def cpu_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The ``flags`` of ``/proc/cpuinfo`` text (default: read it on Linux), None where there is none."""
    if cpuinfo is None and sys.platform.startswith("linux"):
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = None
    for line in (cpuinfo or "").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def machine_flags() -> set[str] | None:
    """This machine's ``/proc/cpuinfo`` flags (:func:`cpu_flags`), None where there are none."""
    return cpu_flags()


def _onednn_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (:data:`UNITS`: AMX-BF16 or AVX512-BF16).

    Args:
        cpuinfo: text of ``/proc/cpuinfo`` (default: read it on Linux; elsewhere oneDNN is asked,
            ``torch.ops.mkldnn._is_mkldnn_bf16_supported``).
    """
    flags = cpu_flags(cpuinfo)
    return _onednn_bf16() if flags is None else unit_for("bf16", flags).native


def cpu_supports_int8(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes int8 natively (:data:`UNITS`: AMX-INT8, AVX-512 VNNI, AVX-VNNI or AVX2), from
    ``cpuinfo`` (default: ``/proc/cpuinfo``; False where there is none to read)."""
    return unit_for("int8", cpu_flags(cpuinfo) or ()).native


def not_native_reason(precision: str, device: str = "cpu", flags=None) -> str | None:
    """Why this machine does not compute ``precision`` natively on ``device``, one line (``"bf16: emulated on
    this CPU (no amx_bf16/avx512_bf16)"``), or None where it does.

    On CPU the answer is :func:`flag_reason` of ``flags`` (default
    :func:`machine_flags`; without any, bf16 is asked of oneDNN and int8 is not native); on CUDA every precision
    is native (the bf16 backend asks ``torch.cuda.is_bf16_supported`` when it is prepared).
    """
    if str(device).split(":")[0] != "cpu":
        return None
    flags = machine_flags() if flags is None else set(flags)
    if flags is None:
        if precision == "fp32" or (precision == "bf16" and _onednn_bf16()):
            return None
        return f"{precision}: not known to be native here (no /proc/cpuinfo flags to read)"
    return flag_reason(precision, flags)


def computes_natively(precision: str, device: str = "cpu", flags=None) -> bool:
    """Whether this machine (or a CPU with the cpuinfo ``flags``) computes ``precision`` natively on ``device``:
    :func:`not_native_reason` is None."""
    return not_native_reason(precision, device, flags) is None
