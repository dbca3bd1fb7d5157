"""Workers forked from the warm server (``python -m segbench.bench.worker --serve``): each case still runs in a
process of its own, a timeout kills only that worker, and a server that cannot start leaves the cold start."""

import os

from segbench.bench import isolate
from segbench.bench.case import make_case
from segbench.bench.isolate import run_isolated

QUICK = {"warmup": 1, "warmup_s": 0.0, "min_iters": 3, "max_iters": 30, "min_time_s": 0.01, "budget_s": 0.5}


def _case(**kw):
    return make_case("fast_scnn", input_size=(32, 48), threads=1, e2e=False, train_step=False, latency=QUICK, **kw)


def test_warm_workers_are_fresh_processes_and_a_timeout_kills_one(tmp_path):
    first = run_isolated(_case())
    assert first["error"] is None and first["worker_exit"] == 0 and first["latency_ms_p50"] > 0
    assert first["env"]["omp_num_threads"] == "1"  # the case's threads reach the forked worker
    server = isolate._SERVERS[isolate.sys.executable]
    killed = run_isolated(_case(), timeout_s=0.0)
    assert killed["error"].startswith("timeout: no result after 0 s") and killed["worker_exit"] == -9
    again = run_isolated(_case(batch=2))
    assert again["error"] is None and again["batch"] == 2
    assert isolate._SERVERS[isolate.sys.executable] is server and server.proc.poll() is None  # one server
    assert server.proc.pid != os.getpid()


def test_a_server_that_cannot_fork_a_worker_leaves_the_cold_start(monkeypatch):
    class Silent(isolate._WarmServer):  # a server that never says it is ready
        def __init__(self, python):
            super().__init__(python)
            self.proc.kill()

    monkeypatch.setattr(isolate, "_SERVERS", {})
    monkeypatch.setattr(isolate, "_WarmServer", Silent)
    row = run_isolated(make_case("nosuchnet"), timeout_s=120)
    assert "unknown model" in row["error"] and row["worker_exit"] == 0  # the cold worker's answer
    assert isolate._SERVERS == {}  # the broken server was dropped
