"""Print the markdown tables of benchmarks/RESULTS.md from the JSON files written by run_all.sh."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def f(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def main(out: Path) -> None:
    zoo = json.loads((out / "zoo_360x480" / "benchmark.json").read_text())
    print("| model | val mIoU (%) | val pixel acc (%) | val mean acc (%) | params (M) | fp16 file (MB) | GFLOPs | CPU p50 (ms) | CPU p90 (ms) | img/s | peak RSS increase (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in zoo:
        ev = json.loads((out / f"eval_{r['model']}.json").read_text())
        print(
            f"| {r['model']} | {ev['miou'] * 100:.2f} | {ev['pixel_accuracy'] * 100:.2f} | {ev['mean_accuracy'] * 100:.2f} | "
            f"{f(r['params_m'])} | {f(r['size_mb_fp16'])} | {f(r['gflops'])} | {f(r['latency_ms_p50'], '.1f')} | "
            f"{f(r['latency_ms_p90'], '.1f')} | {f(r['throughput_img_s'])} | {f(r['memory_mib'], '.1f')} |"
        )
    env = zoo[0]["env"]
    print(f"\nEnvironment: {env['cpu']}, {env['threads']} threads, torch {env['torch']}, torchvision {env['torchvision']}, {env['date']}\n")
    print("| model | params (M) | fp32 file (MB) | GFLOPs | GMACs | CPU p50 (ms) | CPU p90 (ms) | img/s | peak RSS increase (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in json.loads((out / "all_360x480" / "benchmark.json").read_text()):
        if r.get("error"):
            print(f"| {r['model']} | error: {r['error']} |||||||")
            continue
        print(
            f"| {r['model']} | {f(r['params_m'])} | {f(r['size_mb'], '.1f')} | {f(r['gflops'])} | {f(r['gmacs'])} | "
            f"{f(r['latency_ms_p50'], '.1f')} | {f(r['latency_ms_p90'], '.1f')} | {f(r['throughput_img_s'])} | {f(r['memory_mib'], '.1f')} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results"))
