"""benchmarks/amx_goals.py runs end to end on a tiny size and writes the goals table as Markdown."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "amx_goals.py"


@pytest.mark.slow
def test_amx_goals_smoke(tmp_path):
    out = tmp_path / "goals.md"
    env = {**os.environ, "SEGBENCH_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([sys.executable, str(SCRIPT), "--size", "32x32", "--models", "lraspp_mobilenet_v3_large",
                    "--backends", "eager", "channels_last", "--quick", "--output", str(out)],
                   check=True, env=env, timeout=900, capture_output=True)  # fmt: skip
    text = out.read_text()
    assert "### AMX goals: 32 x 32, batch 1, 2 threads" in text and "peak probe" in text
    rows = [line for line in text.splitlines() if line.startswith("| lraspp_mobilenet_v3_large |")]
    assert [r.split(" | ")[2] for r in rows] == ["eager", "channels_last"]
    assert "| lraspp_mobilenet_v3_large.camvid | channels_last |" in text  # mIoU beside eager's
    assert "torch.profiler" in text and "aten::" in text
    assert "PERF_COUNT" in text or "OpenVINO per-layer counters not available" in text
