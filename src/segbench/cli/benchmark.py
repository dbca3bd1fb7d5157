"""``segbench benchmark``: latency, throughput, memory, size, GFLOPs and end-to-end time of a sweep of cases
(models x backends x batches x sizes), each in a fresh subprocess by default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from segbench.cli.args import add_option
from segbench.cli.common import add_model_args, backend_choices, fmt, json_safe, print_row_warnings
from segbench.errors import UserError
from segbench.files import prepare_output_file


def add_parser(sub) -> None:
    """The ``benchmark`` subcommand and its options."""
    b = sub.add_parser("benchmark", help="latency, throughput, memory, size, GFLOPs and end-to-end time; sweeps")
    b.add_argument("models", nargs="+", help="ARCH (random weights: speed and size do not depend on them), ARCH.TAG, "
                   "or FILE.onnx, FILE.pt, FILE.pt2, py:MODULE:FUNCTION, smp:ARCH:ENCODER[:CLASSES], hf:PATH_OR_ID")
    b.add_argument("--backend", nargs="+", default=["eager"], metavar="B",
                   help=f"backends to run (default eager): {', '.join(backend_choices())}; 'best': every backend "
                        "this machine computes natively, and per model the fastest within 0.5 mIoU points (int8) or "
                        "0.05 (bf16, fp32) of eager on the --data images")
    b.add_argument("--size", nargs="+", default=["520x520"], metavar="HxW",
                   help="input sizes, e.g. 360x480 520x520 (default 520x520); the form --size H W also works")
    add_option(b, "--batch", nargs="+", default=[1], help="batch sizes, e.g. 1 4 (default 1)")
    add_option(b, "--threads", help="torch CPU threads (default: torch's)")
    add_option(b, "--min-time", default=1.0, help="minimum timed seconds per case (default 1)")
    add_option(b, "--warmup-time", default=1.0, help="minimum untimed seconds per case (default 1)")
    add_option(b, "--budget", default=30.0,
                  help="maximum timed seconds per case if the median is not yet stable (default 30)")
    add_option(b, "--rel-ci", default=0.02,
                  help="stop when the 95%% interval of the median is within this fraction of it (default 0.02)")
    add_option(b, "--timeout", default=900.0, help="seconds before a case's subprocess is killed (default 900)")
    b.add_argument("--no-isolate", action="store_true",
                   help="run every case in this process (faster start; later models can be affected by earlier ones)")
    b.add_argument("--data", help="images for the end-to-end time and calibration (default: the CamVid sample)")
    b.add_argument("--no-e2e", action="store_true", help="skip the end-to-end time per image")
    b.add_argument("--no-train-step", action="store_true", help="skip the memory of one training step")
    b.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark (recorded either way)")
    b.add_argument("--measure-peak", action="store_true", help="also measure a large fp32 matmul on CPU")
    b.add_argument("--no-probe", action="store_true",
                   help="skip the peak probe (a GEMM per precision, cached per machine) behind %%probe and the "
                        "machine's profile (segbench hardware) in each row's env")
    b.add_argument("--refresh-probe", action="store_true",
                   help="measure the peak probe and the machine's profile again (on an idle machine)")
    b.add_argument("--output", help="folder for benchmark.json")
    b.add_argument("--overwrite", action="store_true", help="replace an existing benchmark.json")
    b.add_argument("--resume", action="store_true",
                   help="continue a stopped sweep in --output: keep the cases benchmark.partial.json lists as "
                        "finished, measure only the others")  # fmt: skip
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    add_model_args(b, "weights for bare ARCH names (default 'none': random initialisation, stated in the output)")
    b.set_defaults(func=run)


def _check_args(args) -> tuple[Path | None, dict[str, str]]:
    """``(benchmark.json path or None, {spec: error} of the models that cannot be benchmarked)``.

    Raises:
        UserError: an unknown backend, an existing output, missing --data, or no usable model (the numbers are
            checked by the parser, :mod:`segbench.options`).
    """
    from segbench.bench.backends import get_backend
    from segbench.bench.select import BEST
    from segbench.bench.table import check_specs

    for b in args.backend:
        if b != BEST:
            get_backend(b)
    out_file = None
    if args.output:
        if Path(args.output).exists() and not Path(args.output).is_dir():
            raise UserError(f"--output {args.output}: exists and is not a folder; choose a folder")
        out_file = prepare_output_file(Path(args.output) / "benchmark.json", args.overwrite or args.resume)
    elif args.resume:
        raise UserError("--resume: needs --output, the folder of the stopped sweep")
    if args.data and not Path(args.data).exists():
        raise UserError(f"--data {args.data}: no such file or folder")
    bad = check_specs(args.models)
    if len(bad) == len(args.models):
        raise UserError(next(iter(bad.values())))
    return out_file, bad


PARTIAL = "benchmark.partial.json"
"""Beside benchmark.json while a sweep is unfinished: which of its rows are finished cases (``--resume``)."""


def _key(row: dict) -> list:
    """A case's identity in its row: model spec, backend, batch, input size."""
    return [row.get("model"), row.get("backend"), row.get("batch"), list(row.get("input_size") or [])]


def _stopped_rows(out_file: Path) -> list[dict]:
    """The finished rows of the stopped sweep in ``out_file``'s folder (none when it finished or never ran).

    Raises:
        UserError: benchmark.json or benchmark.partial.json cannot be read.
    """
    from segbench.files import read_text

    marker = out_file.parent / PARTIAL
    if not marker.is_file():
        return []
    try:
        rows, finished = json.loads(read_text(out_file, "benchmark.json")), json.loads(read_text(marker, PARTIAL))
        return [rows[i] for i in finished["rows"]]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UserError(f"{marker}: cannot read the stopped sweep ({exc}); run without --resume") from None


def _save(out_file: Path, rows: list[dict], finished: list[int], total: int, done: bool) -> None:
    """benchmark.json (every row so far) and, until the sweep is done, benchmark.partial.json beside it."""
    from segbench.files import write_bytes_atomic

    write_bytes_atomic(out_file, json.dumps(json_safe(rows), indent=2, default=str).encode())
    marker = out_file.parent / PARTIAL
    if done:
        marker.unlink(missing_ok=True)
    else:
        state = {"partial": True, "rows": finished, "finished": len(finished), "cases": total}
        write_bytes_atomic(marker, json.dumps(state, indent=2).encode())


def run(args) -> int:
    from segbench.bench.hardware import hardware_profile
    from segbench.bench.machines import machine_id
    from segbench.bench.roofline import add_roofline
    from segbench.bench.select import expand_backends, native_notes
    from segbench.bench.sweep import sweep
    from segbench.bench.table import format_probe, format_table, parse_sizes
    from segbench.engine.device import check_device

    device = check_device(args.device)
    sizes = parse_sizes(args.size)
    out_file, bad = _check_args(args)
    models = [m for m in args.models if m not in bad]
    backends = expand_backends(args.backend, device)  # "best": what this machine computes natively, eager first
    for line in native_notes(args.backend, device):
        print(line, file=sys.stderr)
    latency = {"min_time_s": args.min_time, "budget_s": args.budget, "rel_ci": args.rel_ci, "warmup_s": args.warmup_time}
    rows = [{"model": m, "error": e, "error_kind": "user"} for m, e in bad.items()]
    kept = _stopped_rows(out_file) if args.resume and out_file is not None else []
    done = {json.dumps(_key(r)) for r in kept}
    rows += kept
    finished = list(range(len(rows) - len(kept), len(rows)))
    total = len(models) * len(backends) * len(sizes) * len(args.batch)
    probe = profile = None
    if not args.no_probe:  # measured once here (or read from the caches); the workers read the cache
        from segbench.bench.peak import probe_peaks

        profile = hardware_profile(device, args.threads, refresh=args.refresh_probe)
        probe = probe_peaks(device, args.threads, refresh=args.refresh_probe, profile=profile)  # its GEMMs

    def on_row(row, i, total):
        add_roofline(row, profile)  # min(peak, intensity x bandwidth) from the machine's profile
        if profile is not None and isinstance(row.get("env"), dict):
            row["env"]["hardware"] = profile  # the machine's profile (segbench hardware --json)
        row["machine"] = machine_id(profile, (row.get("env") or {}).get("cpu"))  # a --resume may end elsewhere
        rows.append(row)
        if row.get("worker_exit") in (None, 0):  # a crashed worker's case is measured again by --resume
            finished.append(len(rows) - 1)
        if out_file is not None:  # the finished rows survive an interrupted sweep
            _save(out_file, rows, finished, total, done=False)
        if not args.quiet:
            what = f"{row.get('model')} {row.get('backend')} batch {row.get('batch')} {'x'.join(map(str, row.get('input_size') or []))}"
            result = f"error: {row['error']}" if row.get("error") else f"p50 {row['latency_ms_p50']:.2f} ms"
            took = f" ({row['worker_s']:.1f} s)" if row.get("worker_s") is not None else ""
            print(f"[{i + 1}/{total}] {what}: {result}{took}", file=sys.stderr, flush=True)

    try:
        sweep(
            models, backends=backends, batches=args.batch, sizes=sizes, isolate=not args.no_isolate,
            timeout_s=args.timeout, on_row=on_row, device=device, threads=args.threads, weights=args.weights,
            latency=latency, data=args.data, e2e=not args.no_e2e, train_step=not args.no_train_step,
            cudnn_benchmark=args.cudnn_benchmark, measure_peak=args.measure_peak, probe_peak=probe is not None,
            trust_remote_code=args.trust_remote_code, skip=lambda case: json.dumps(_key(case.base_row())) in done,
        )  # fmt: skip
    except KeyboardInterrupt:
        if out_file is not None:
            _save(out_file, rows, finished, total, done=False)
            print(f"segbench: {len(finished)} of {total} case(s) finished; their rows are in {out_file} "
                  f"({PARTIAL} marks it partial); run the same command with --resume to measure only the others",
                  file=sys.stderr)  # fmt: skip
        raise
    if rows and all(r.get("error_kind") == "user" for r in rows) and len(rows) == 1:
        raise UserError(rows[0]["error"])
    print(f"device {device}; " + ("each case in a fresh subprocess" if not args.no_isolate else "all cases in this process"))
    print(format_table(rows))
    _print_best(args.backend, rows, device)
    _print_legend(args, rows, device)
    if probe is not None:
        print(format_probe(probe))
    if out_file is not None:
        unfinished = total - len(finished)
        _save(out_file, rows, finished, total, done=not unfinished)
        print(f"wrote {out_file}" + (f" (partial: {unfinished} case(s) whose worker crashed are measured again by "
                                     "--resume)" if unfinished else ""))  # fmt: skip
    return 0


def _print_best(backends: list[str], rows: list[dict], device: str) -> None:
    """With ``best``: per (model, size, batch), the fastest backend whose accuracy holds, marked in its row
    (:func:`segbench.bench.select.mark_best`, ``best_choice`` with ``left_out``) and printed."""
    from segbench.bench.select import BEST, describe_choice, mark_best

    if BEST not in backends:
        return
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("model"), r.get("batch"), str(r.get("input_size"))), []).append(r)
    for (model, batch, size), group in groups.items():
        choice = mark_best(group, device)
        print(describe_choice(f"{model} (batch {batch}, input {size})", choice))


def _print_legend(args, rows: list[dict], device: str) -> None:
    """What the table's columns mean and how they were measured, from the first row without an error."""
    ok = [r for r in rows if not r.get("error")]
    if ok:
        r0, env = ok[0], ok[0].get("env") or {}
        where = env.get("cuda_device") if str(device).startswith("cuda") else env.get("cpu")
        print(f"p50/p90: median/90th percentile ms per batch; CI%: half-width of the 95% interval of the median "
              f"(order statistics) relative to it, * = not within --rel-ci {args.rel_ci:g} when the budget of "
              f"{args.budget:g} s ran out")
        print(f"GFLOP/s: FLOPs (torch.utils.flop_counter, 1 multiply-add = 2 FLOPs) x batch / p50; prec: the precision "
              f"the backend computes in; %peak against that precision's {r0.get('peak_kind')} peak "
              f"(first row: {r0.get('peak_formula')}); %probe against this machine's measured GEMM in that precision")
        print("roof ms: the roofline bound as a time, FLOPs / min(peak of that precision, FLOP per byte moved x "
              "measured memory bandwidth) (segbench hardware); %roof: that bound / p50, the share of it reached")
        base = r0.get("rss_before_model_mib")
        print(f"mem: {r0.get('memory_kind')} during one forward; RSS: peak resident set of the measuring process "
              f"(ru_maxrss) before the training step, {fmt(base, '.0f')} MiB of it before the model was loaded "
              f"(Python, torch, segbench); train: {r0.get('train_memory_kind') or '-'} of one training step "
              f"(forward, cross-entropy, backward, SGD) at batch max(batch, 2), eager only")
        print(f"e2e: decode + preprocess + model + postprocess per image (batch-1 cases), on "
              f"{args.data or 'the CamVid sample'}; mIoU on those images when their classes are the model's")
        print(f"torch {env.get('torch')}, {env.get('threads')} threads, cudnn.benchmark {env.get('cudnn_benchmark')}, {where}")
    if any(r.get("weights") == "none" for r in rows):
        print("weights 'none': random initialisation (speed, size and memory do not depend on the weight values)")
    print_row_warnings(rows)
