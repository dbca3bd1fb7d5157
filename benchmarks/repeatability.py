"""Run the same ``segbench benchmark`` command several times and report how far the medians spread.

Usage::

    python benchmarks/repeatability.py [--runs 3] [--out DIR] [-- BENCHMARK ARGS...]

Default benchmark arguments: ``fast_scnn --size 360x480 --threads 1``. Each run is a separate
``python -m segbench.cli benchmark ... --output DIR/run_K`` (and every case in it a fresh subprocess), one
after the other. For each case (model, backend, batch, size) the script prints the p50 of every run, the
half-width of each run's 95% interval of the median, and the spread ``(max - min) / median`` of the run
medians, in percent; ``DIR/repeatability.json`` holds the same. Latency is only repeatable on a machine
where nothing else runs: state the load (``uptime``) beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_ARGS = ["fast_scnn", "--size", "360x480", "--threads", "1"]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bench_args = DEFAULT_ARGS
    if "--" in argv:
        cut = argv.index("--")
        argv, bench_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="number of runs (default 3)")
    p.add_argument("--out", default="benchmarks/results/repeatability", help="output folder")
    args = p.parse_args(argv)
    if args.runs < 2:
        p.error("--runs must be at least 2")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    runs = []
    for k in range(args.runs):
        run_dir = out / f"run_{k + 1}"
        cmd = [
            sys.executable,
            "-m",
            "segbench.cli",
            "benchmark",
            *bench_args,
            "--output",
            str(run_dir),
            "--overwrite",
            "--quiet",
        ]
        before = load_average()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return proc.returncode
        rows = json.loads((run_dir / "benchmark.json").read_text())
        runs.append({"run": k + 1, "wall_s": wall, "load_before": before, "load_after": load_average(), "rows": rows})
        print(f"run {k + 1}/{args.runs}: {wall:.1f} s, load average {before} -> {runs[-1]['load_after']}", flush=True)

    cases: dict[tuple, list[dict]] = {}
    for run in runs:
        for r in run["rows"]:
            key = (r.get("model"), r.get("backend"), r.get("batch"), "x".join(map(str, r.get("input_size") or [])))
            cases.setdefault(key, []).append(r)
    summary = []
    print(f"\ncommand: segbench benchmark {' '.join(bench_args)}  ({args.runs} runs)")
    print(
        "| model | backend | batch | H x W | p50 per run (ms) | 95% CI half-width per run (%) | converged | spread (%) |"
    )
    print("| --- | --- | ---: | --- | --- | --- | --- | ---: |")
    for (model, backend, batch, size), rows in cases.items():
        p50 = [r.get("latency_ms_p50") for r in rows]
        if any(v is None for v in p50):
            errors = "; ".join(str(r.get("error")) for r in rows if r.get("error"))
            print(f"| {model} | {backend} | {batch} | {size} | error: {errors} | | | |")
            summary.append({"model": model, "backend": backend, "batch": batch, "size": size, "error": errors})
            continue
        spread = (max(p50) - min(p50)) / statistics.median(p50)
        ci = [None if r.get("ci_rel") is None else 100 * r["ci_rel"] for r in rows]
        conv = [bool(r.get("converged")) for r in rows]
        print(f"| {model} | {backend} | {batch} | {size} | {', '.join(f'{v:.2f}' for v in p50)} | "
              f"{', '.join('-' if c is None else f'{c:.1f}' for c in ci)} | {', '.join('yes' if c else 'no' for c in conv)} | "
              f"{100 * spread:.1f} |")  # fmt: skip
        summary.append({"model": model, "backend": backend, "batch": batch, "size": size, "p50_ms": p50,
                        "ci_rel": [r.get("ci_rel") for r in rows], "converged": conv, "spread": spread})  # fmt: skip
    env = next((r.get("env") for run in runs for r in run["rows"] if r.get("env")), {}) or {}
    print(f"\nspread = (max - min) / median of the runs' p50; machine: {env.get('cpu')}, {os.cpu_count()} CPUs, "
          f"{env.get('threads')} torch threads, torch {env.get('torch')}; load averages (1, 5, 15 min) before/after "
          f"each run: {', '.join(r['load_before'] + ' / ' + r['load_after'] for r in runs)}")  # fmt: skip
    result = {"command": ["segbench", "benchmark", *bench_args], "runs": args.runs, "cases": summary,
              "load": [{"before": r["load_before"], "after": r["load_after"], "wall_s": r["wall_s"]} for r in runs]}  # fmt: skip
    (out / "repeatability.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'repeatability.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
