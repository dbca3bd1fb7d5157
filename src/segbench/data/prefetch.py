"""Load dataset items ahead of the consumer on a background thread, so that decoding the next images
overlaps with the model running on the current one.

A thread rather than worker processes: image decoding in Pillow and most of NumPy release the GIL, a
thread starts at once, and it works for any object with ``__getitem__`` (nothing is pickled).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["prefetch"]

_DONE = object()


def prefetch(dataset: Any, n: int | None = None, depth: int = 4) -> Iterator[Any]:
    """Yield ``dataset[0]``, ..., ``dataset[n - 1]`` in order, loading up to ``depth`` items ahead.

    Args:
        dataset: Anything with ``__getitem__`` and, when ``n`` is None, ``__len__``.
        n: Number of items (default ``len(dataset)``).
        depth: Items loaded ahead of the consumer (bounded memory); 0 loads in the caller's thread.

    Yields:
        The items, in index order.

    Raises:
        Exception: Whatever ``dataset[i]`` raises, re-raised in the consumer at item ``i``.
    """
    n = len(dataset) if n is None else n
    if depth <= 0:
        for i in range(n):
            yield dataset[i]
        return
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for i in range(n):
                if stop.is_set():
                    return
                item = dataset[i]
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put((None, exc))
            return
        items.put((_DONE, None))

    thread = threading.Thread(target=produce, name="segbench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = items.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
