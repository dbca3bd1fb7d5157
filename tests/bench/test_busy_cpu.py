"""The benchmark worker measures how busy the CPU was just before timing, and the CLI warns when it was."""

import pytest

from segbench.bench import env
from segbench.bench.env import BUSY_WARN_PCT, busy_warning, cpu_busy_pct


def _stat(user, idle, iowait=0):
    return f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"


def test_cpu_busy_pct_is_the_busy_share_between_two_reads(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text(_stat(user=1000, idle=5000, iowait=100))
    # between the reads: 60 busy jiffies, 140 idle + 20 iowait -> 60 / 220
    monkeypatch.setattr(env.time, "sleep", lambda s: stat.write_text(_stat(user=1060, idle=5140, iowait=120)))
    assert cpu_busy_pct(0.01, path=str(stat)) == pytest.approx(100 * 60 / 220)


def test_cpu_busy_pct_without_proc_stat_is_none(tmp_path):
    assert cpu_busy_pct(0.0, path=str(tmp_path / "absent")) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert cpu_busy_pct(0.0, path=str(tmp_path / "odd")) is None


def test_busy_warning_names_the_busy_cases_only():
    rows = [
        {"model": "a", "cpu_busy_before_pct": BUSY_WARN_PCT + 30},
        {"model": "b", "cpu_busy_before_pct": 2.0},
        {"model": "c", "cpu_busy_before_pct": None},
        {"model": "d", "error": "x"},
    ]
    line = busy_warning(rows)
    assert line.startswith("warning:") and " a;" in line and "b" not in line.split("timing")[1].split(";")[0]
    assert f"{BUSY_WARN_PCT + 30:.0f}%" in line
    assert busy_warning(rows[1:]) is None


def test_worker_row_records_the_load_and_the_cli_warns(monkeypatch, capsys, tmp_path):
    from segbench.bench import runner
    from segbench.cli import main

    monkeypatch.setattr(runner, "cpu_busy_pct", lambda interval_s=0.5: 87.0)
    out = tmp_path / "b.json"
    code = main(["benchmark", "fast_scnn", "--size", "32x48", "--no-isolate", "--min-time", "0.01",
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "87% of the CPU busy just before timing fast_scnn" in err
    import json

    (row,) = json.loads((out / "benchmark.json").read_text())  # --output is the folder
    assert set(row["env"]["hardware"]["precisions"]) == {"fp32", "bf16", "fp16", "int8"}  # the machine's profile
