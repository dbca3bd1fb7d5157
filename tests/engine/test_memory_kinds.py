"""segbench.engine.memory: every memory kind a measurement reports is one MEMORY_KINDS explains."""

import torch

from segbench.engine.memory import MEMORY_KINDS, peak_memory_mib, peak_rss_increase_mib


def test_cpu_measurements_report_a_listed_kind():
    row = peak_memory_mib(torch.nn.Conv2d(3, 4, 3, padding=1), (1, 3, 16, 16))
    assert row["memory_kind"] in MEMORY_KINDS and row["memory_mib"] >= 0
    peak = peak_rss_increase_mib(lambda: torch.ones(256, 1024, 1024, dtype=torch.uint8))
    assert peak["memory_kind"] in MEMORY_KINDS and peak["memory_mib"] > 100  # a 256 MiB tensor
