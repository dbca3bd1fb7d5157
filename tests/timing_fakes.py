"""A fake timer and clock for the latency tests: no test depends on how fast this machine is."""


def fake_timing(times):
    """A timer returning ``times`` (ms) in turn (cycling) and a clock (s) that advances by each returned time."""
    state = {"now": 0.0, "i": 0}

    def timer(fn):
        fn()
        ms = times[state["i"] % len(times)]
        state["i"] += 1
        state["now"] += ms / 1e3
        return ms

    return timer, (lambda: state["now"])
