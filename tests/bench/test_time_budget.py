"""``compare --time-budget``: the budget's shares, the deadline that stops ``time_calls``, the row's
``budget_cut`` and its one line, and the CLI option. Clocks are fakes: no test asserts a wall-clock speed."""

import json
import time

import pytest
import torch

from segbench.bench.budget import REPORT_SHARE, TimeBudget, check_time_budget, cut_line
from segbench.bench.latency import MIN_CI_CALLS, WARMUP_SHARE, measure_latency, time_calls
from segbench.bench.measure import benchmark_model
from segbench.bench.runner import run_case
from segbench.bench.schema import RESULT_KEYS
from segbench.errors import UserError
from timing_fakes import fake_timing

UNSTABLE = [10.0, 500.0, 50.0, 300.0, 20.0, 1000.0]  # ms: a median whose interval never gets within 2%


def test_the_deadline_stops_an_unstable_median_and_says_so():
    timer, clock = fake_timing(UNSTABLE)
    out = time_calls(lambda: None, timer, warmup=0, warmup_s=0, min_iters=5, min_time_s=0, budget_s=100,
                     rel_ci=0.02, deadline_s=8.0, clock=clock)  # fmt: skip
    assert out["budget_cut"] and not out["converged"]
    assert 8.0 <= clock() < 8.0 + 1.0  # stopped by the first call past the deadline, not by the 100 s budget
    assert out["ci"] is not None and out["ci_rel"] > 0.02  # the interval it reached is recorded
    without = time_calls(lambda: None, fake_timing(UNSTABLE)[0], warmup=0, warmup_s=0, min_iters=5, min_time_s=0,
                         budget_s=8.0, rel_ci=0.02, clock=fake_timing(UNSTABLE)[1])  # fmt: skip
    assert not without["budget_cut"]  # the case's own budget_s is no cut by compare's budget


def test_a_passed_deadline_still_gives_an_interval():
    timer, clock = fake_timing(UNSTABLE)
    out = time_calls(lambda: None, timer, warmup=5, warmup_s=1.0, min_iters=10, min_time_s=2.0, budget_s=30,
                     rel_ci=0.02, deadline_s=-3.0, clock=clock)  # fmt: skip
    assert out["warmup_iters"] == 1  # one untimed call, then the fewest calls with a 95% interval
    assert len(out["times_ms"]) == MIN_CI_CALLS and out["ci"] is not None and out["budget_cut"]


def test_the_warm_up_gives_way_to_the_deadline():
    timer, clock = fake_timing([125.0])
    out = time_calls(lambda: None, timer, warmup=2, warmup_s=100.0, min_iters=1, max_iters=1, min_time_s=0,
                     deadline_s=4.0, clock=clock)  # fmt: skip
    assert out["warmup_s"] == pytest.approx(4.0 * WARMUP_SHARE)  # 8 calls of 125 ms: 1 s, a quarter of 4 s
    assert out["budget_cut"]


def test_a_median_stable_before_the_deadline_is_not_cut():
    timer, clock = fake_timing([10.0, 10.1, 9.9, 10.05, 9.95])
    out = time_calls(lambda: None, timer, warmup=3, warmup_s=0, min_iters=10, min_time_s=0, budget_s=100,
                     rel_ci=0.02, deadline_s=50.0, clock=clock)  # fmt: skip
    assert out["converged"] and not out["budget_cut"] and len(out["times_ms"]) == 10


class _Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_the_budget_shares_what_is_left_over_the_cases_left():
    clock = _Clock()
    budget = TimeBudget(60.0, 5, clock=clock)
    assert budget.reserve_s == pytest.approx(60.0 * REPORT_SHARE)
    first = budget.begin_case()
    reserve = 60.0 * REPORT_SHARE
    assert first - clock.now == pytest.approx((60 - reserve) / 5)  # equal shares while nothing is spent
    clock.now += 4.0  # the first case took 4 s of its share: the others share what it left
    assert budget.begin_case() - clock.now == pytest.approx((60 - 4 - reserve) / 4)
    clock.now += 40.0  # the second overran: the rest is shared by the three left, none below 0
    assert budget.begin_case() - clock.now == pytest.approx((60 - 44 - reserve) / 3)
    clock.now += 30.0
    assert budget.begin_case() == clock.now and budget.left_s() == pytest.approx(-14.0)
    started = TimeBudget(10.0, 1, reserve_s=0.0, start=clock.now - 2.0, clock=clock)  # began before its creation
    assert started.begin_case() - clock.now == pytest.approx(8.0)


@pytest.mark.parametrize("bad", [0, -1, "nan", "inf", "abc"])
def test_a_budget_must_be_positive_seconds(bad):
    with pytest.raises(UserError, match=r"--time-budget .*: expected a number of seconds > 0"):
        check_time_budget(bad)
    assert check_time_budget(None) is None and check_time_budget("2.5") == 2.5


def test_the_cut_line_names_the_case_and_the_interval_reached():
    row = {"model": "fast_scnn.camvid", "budget_cut": True, "iters": 7, "ci_rel": 0.063, "latency_ms_p50": 41.25}
    line = cut_line(row)
    assert line.startswith("fast_scnn.camvid: the time budget cut timing short after 7 calls")
    assert "p50 41.2 ms" in line and "+-6.3%" in line and "--time-budget" in line and "\n" not in line
    assert cut_line({**row, "budget_cut": False}) is None and cut_line({"model": "x"}) is None


def test_measure_latency_takes_a_wall_clock_deadline():
    net = torch.nn.Conv2d(3, 2, 1)
    lat = measure_latency(net, (1, 3, 8, 8), warmup=50, warmup_s=5.0, min_iters=100, min_time_s=5.0,
                          deadline=time.time() - 1.0)  # fmt: skip
    assert lat.iters == MIN_CI_CALLS and lat.warmup_iters == 1 and lat.latency_ms_ci_low is not None
    assert lat.budget_cut == (lat.ci_rel > lat.rel_ci)


def test_the_row_records_the_cut():
    assert "budget_cut" in RESULT_KEYS
    row = benchmark_model(torch.nn.Conv2d(3, 2, 1), input_size=(8, 8), warmup=1, warmup_s=0, min_iters=200,
                          min_time_s=10.0, deadline=time.time() - 1.0)  # fmt: skip
    assert row["error"] is None and row["iters"] == MIN_CI_CALLS and isinstance(row["budget_cut"], bool)
    case = {"model": "fast_scnn", "input_size": [32, 48], "e2e": False, "train_step": False,
            "latency": {"min_iters": 200, "min_time_s": 10.0, "deadline": time.time() - 1.0}}  # fmt: skip
    worker_row = run_case(json.loads(json.dumps(case)))  # as the worker reads it
    assert worker_row["error"] is None and worker_row["iters"] == MIN_CI_CALLS


def test_compare_cli_takes_a_budget_and_prints_the_cut(cli, tmp_path, camvid_root, fast_scnn_ckpt, monkeypatch):
    rc, out, err = cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--time-budget", 0)
    assert rc == 2 and len(err.strip().splitlines()) == 1  # the option table's range (segbench.options)
    assert err.startswith("segbench: error: argument --time-budget: must be above 0, got 0.0")
    import segbench.bench.latency as latency

    monkeypatch.setattr(latency, "median_ci", lambda values, confidence=0.95: (0.5 * values[0], 2.0 * values[-1]))
    rc, out, err = cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--max-images", 1, "--grid", 1,
                       "--in-process", "--time-budget", 0.001, "--output", tmp_path / "r", "--quiet")  # fmt: skip
    assert rc == 0, err
    (row,) = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert row["budget_cut"] is True and row["iters"] == MIN_CI_CALLS and row["ci_rel"] > 0.02
    cut = [line for line in out.splitlines() if "the time budget cut timing short" in line]
    assert cut == [cut_line(row, row["model"])]


def test_compare_hands_each_worker_its_deadline(monkeypatch, camvid_root):
    import segbench.compare as cmp

    cases = []
    monkeypatch.setattr(cmp, "run_isolated", lambda case: cases.append(case) or {"latency_ms_p50": 1.0})
    opts = cmp.CompareOptions(max_images=1, grid_images=0, progress=False, time_budget_s=30.0)
    p = cmp.plan(camvid_root, opts)
    row = cmp._benchmark("fast_scnn", None, "eager", None, p, opts, deadline=1234.5)
    assert row == {"latency_ms_p50": 1.0} and cases[0].latency == {"min_time_s": opts.min_time_s, "deadline": 1234.5}
    cmp._benchmark("fast_scnn", None, "eager", None, p, opts)
    assert "deadline" not in cases[1].latency  # no budget: the worker's own rules alone


def test_the_process_start_is_read_from_proc():
    import subprocess
    import sys

    code = ("import time; time.sleep(1.0); from segbench.bench.budget import process_start_time; "
            "print(time.time() - process_start_time())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 1.0 <= float(out) < 30.0  # the second slept before the import is inside the budget


def test_the_cli_budget_counts_from_the_process_start(cli, monkeypatch, tmp_path, camvid_root, fast_scnn_ckpt):
    import segbench.compare as cmp
    from segbench.bench.budget import process_start_time

    seen = {}

    def fake_compare(models, data, out, **settings):
        seen.update(settings)
        return {"rows": [], "skipped": [], "files": {"report_html": str(out / "report.html")}, "statements": []}

    monkeypatch.setattr(cmp, "compare", fake_compare)
    cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--output", tmp_path / "r", "--quiet")
    assert seen["time_budget_s"] == 60.0 and seen["budget_start"] == pytest.approx(process_start_time(), abs=0.05)
    assert seen["budget_start"] < time.time()
