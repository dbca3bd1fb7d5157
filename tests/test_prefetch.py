"""segbench.data.prefetch: order, errors, early stop, and that loading overlaps with the consumer."""

import threading
import time

import pytest

from segbench.data.prefetch import prefetch


class Slow:
    def __init__(self, n, delay=0.0, fail_at=None):
        self.n, self.delay, self.fail_at, self.threads = n, delay, fail_at, set()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        if i == self.fail_at:
            raise ValueError(f"bad item {i}")
        time.sleep(self.delay)
        return i


def test_prefetch_keeps_order_on_a_background_thread():
    data = Slow(20)
    assert list(prefetch(data, depth=3)) == list(range(20))
    assert data.threads == {"segbench-prefetch"}
    assert list(prefetch(data, n=5)) == [0, 1, 2, 3, 4]
    assert list(prefetch(Slow(4), depth=0)) == [0, 1, 2, 3]


def test_prefetch_reraises_at_the_failing_item():
    items = prefetch(Slow(5, fail_at=2))
    assert [next(items), next(items)] == [0, 1]
    with pytest.raises(ValueError, match="bad item 2"):
        next(items)


def test_prefetch_overlaps_loading_with_consumer_work():
    n, delay = 8, 0.05
    t0 = time.perf_counter()
    for _ in prefetch(Slow(n, delay=delay), depth=2):
        time.sleep(delay)  # the "model"
    overlapped = time.perf_counter() - t0
    assert overlapped < 1.6 * n * delay  # serial would be 2 * n * delay


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    data = Slow(1000, delay=0.001)
    gen = prefetch(data, depth=2)
    assert next(gen) == 0
    gen.close()
    assert not any(t.name == "segbench-prefetch" and t.is_alive() for t in threading.enumerate())
