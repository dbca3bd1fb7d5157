"""A benchmark case: one (model, backend, input size, batch) with its settings, the unit a sweep runs.

A case travels to the worker subprocess as JSON (:meth:`Case.to_dict`, :meth:`Case.from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from segbench.errors import UserError

__all__ = ["Case", "as_case", "make_case"]


@dataclass(frozen=True)
class Case:
    """One benchmark case, the input of :func:`segbench.bench.runner.run_case` and
    :func:`segbench.bench.isolate.run_isolated`.

    Attributes:
        model: Model spec (``ARCH``, ``ARCH.TAG`` or a weights file); a bare ``ARCH`` without ``weights``
            gets random weights (speed and size do not depend on them).
        backend: Backend name (:data:`segbench.bench.backends.BACKENDS`).
        batch: Batch size.
        input_size: ``[H, W]``, pixels.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: torch CPU threads (None: torch's default).
        weights: Weights for a bare ``ARCH``.
        latency: Keyword arguments for :func:`segbench.bench.latency.measure_latency` (``warmup``,
            ``warmup_s``, ``min_iters``, ``max_iters``, ``min_time_s``, ``budget_s``, ``rel_ci``).
        data: Images for the end-to-end time (a dataset folder or images folder); None: segbench's CamVid
            sample.
        e2e: Measure the end-to-end time per image (batch 1 cases only).
        train_step: Measure the memory of one training step (``eager`` backend only).
        cudnn_benchmark: Value of ``torch.backends.cudnn.benchmark`` in the worker.
        measure_peak: Also measure a large matmul on CPU.
        probe_peak: Read the measured peak per precision (:func:`segbench.bench.peak.probe_peaks`, cached per
            machine) and add ``probe_gflop_s`` / ``probe_fraction`` / ``peak_probe`` to the row.
        trust_remote_code: ``--trust-remote-code``: the model's file may run code of its own (README: Trust rule).
    """

    model: str
    backend: str = "eager"
    batch: int = 1
    input_size: list[int] = field(default_factory=lambda: [520, 520])
    device: str = "cpu"
    threads: int | None = None
    weights: str | None = None
    latency: dict = field(default_factory=dict)
    data: str | None = None
    e2e: bool = True
    train_step: bool = True
    cudnn_benchmark: bool = False
    measure_peak: bool = False
    probe_peak: bool = False
    trust_remote_code: bool = False

    def to_dict(self) -> dict:
        """The case as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Case:
        """The case of a dict from :meth:`to_dict`.

        Raises:
            UserError: a key that is not a field of :class:`Case`, or no ``model``.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"benchmark case: unknown keys {', '.join(unknown)}; expected {', '.join(sorted(names))}")
        if "model" not in values:
            raise UserError("benchmark case: no 'model'")
        return cls(**values)

    def base_row(self) -> dict:
        """The columns of a result row that describe the case, with ``error`` None."""
        return {"model": self.model, "weights": self.weights, "backend": self.backend, "batch": self.batch,
                "input_size": list(self.input_size), "device": self.device, "error": None}  # fmt: skip


def as_case(case: Case | dict) -> Case:
    """``case`` itself, or the :class:`Case` of a dict (see :meth:`Case.from_dict`)."""
    return case if isinstance(case, Case) else Case.from_dict(case)


def make_case(
    model: str,
    *,
    backend: str = "eager",
    batch: int = 1,
    input_size: tuple[int, int] = (520, 520),
    device: str = "cpu",
    threads: int | None = None,
    weights: str | None = None,
    latency: dict | None = None,
    data: str | None = None,
    e2e: bool = True,
    train_step: bool = True,
    cudnn_benchmark: bool = False,
    measure_peak: bool = False,
    probe_peak: bool = False,
    trust_remote_code: bool = False,
) -> Case:
    """One benchmark case with its values normalised (ints, a list ``[H, W]``, a string ``data``); the
    arguments are the attributes of :class:`Case`."""
    return Case(
        model=model, backend=backend, batch=int(batch), input_size=[int(s) for s in input_size], device=device,
        threads=threads, weights=weights, latency=dict(latency or {}), data=None if data is None else str(data),
        e2e=bool(e2e), train_step=bool(train_step), cudnn_benchmark=bool(cudnn_benchmark),
        measure_peak=bool(measure_peak), probe_peak=bool(probe_peak), trust_remote_code=bool(trust_remote_code),
    )  # fmt: skip
