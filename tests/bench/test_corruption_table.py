"""benchmarks/corruption_table.py turns a sweep's table into the RESULTS.md tables with the right means."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "corruption_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("corruption_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tables_average_over_severities_corruptions_and_groups():
    table = {"corruptions": ["gaussian_noise", "fog"], "severities": [1, 5], "num_images": 2, "seed": 0,
             "models": {"a": {"miou": {"gaussian_noise": [0.4, 0.2], "fog": [0.6, 0.4]}, "clean_miou": 0.8,
                              "mean_miou": 0.4, "relative_miou": 0.5}}}  # fmt: skip
    lines = _module().tables(table).splitlines()
    assert "| gaussian_noise | 30.0 |" in lines and "| fog | 50.0 |" in lines  # mean over severities
    assert "| 1 | 50.0 |" in lines and "| 5 | 30.0 |" in lines  # mean over corruptions
    assert "| noise | 30.0 |" in lines and "| weather | 50.0 |" in lines and not any("| blur" in x for x in lines)
    assert "| **mean** | 40.0 |" in lines and "| mean / clean | 50.0 |" in lines
    assert lines.count("| clean (same images) | 80.0 |") == 3


def test_tables_show_the_sweeps_intervals_where_it_has_them():
    table = {"corruptions": ["fog"], "severities": [1], "num_images": 2, "seed": 0,
             "models": {"a": {"miou": {"fog": [0.4]}, "clean_miou": 0.8, "mean_miou": 0.4, "relative_miou": 0.5,
                              "mean_miou_interval": [0.35, 0.45], "clean_miou_interval": [0.75, 0.85]}}}  # fmt: skip
    lines = _module().tables(table).splitlines()
    assert "| **mean** | 40.0 [35.0, 45.0] |" in lines and "| mean / clean | 50.0 |" in lines
    assert "| clean (same images) | 80.0 [75.0, 85.0] |" in lines
    table["comparisons"] = [{"a": "a", "b": "b", "significant": True, "relative_significant": False,
                             "mean_miou_difference": {"estimate": 0.05, "low": 0.04, "high": 0.06},
                             "relative_difference": {"estimate": 0.01, "low": -0.02, "high": 0.03}}]  # fmt: skip
    assert "| a vs b | **+5.0 [4.0, 6.0]** | +1.0 [-2.0, 3.0] |" in _module().tables(table).splitlines()
