"""User-facing errors, the one-line form of any exception, and optional dependencies.

Every foreseeable mistake a user can make (missing file, unknown model, bad config key, undecodable
image) raises :class:`UserError`. The CLI prints its message on one line and exits with code 2; the
Python API lets it propagate so callers can catch it. Library messages name the parameter; the CLI's
name the flag.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import threading
from types import ModuleType


class UserError(ValueError):
    """Bad input from the user: a path, an option, a file's content. The message is one line that
    names the thing and says what was expected."""


class BackendUnavailable(UserError):
    """The backend's package is not installed, or this device cannot run it. One line, naming the fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is so that every ``finally`` (temporary files, locks) runs and a
    comparison can write what finished (:func:`stop_signals`). The CLI exits 143 on it, 130 on SIGINT."""


def _on_sigterm(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def stop_signals():
    """For the ``with`` block: SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt`` (both caught
    as ``KeyboardInterrupt``) wherever the main thread is; the previous handlers are restored after. Off the
    main thread (where Python cannot set handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}  # fmt: skip
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``"TypeName: first non-empty line of the message"``, cut to ``limit`` characters with ``...``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import the optional dependency ``module`` or raise a one-line error naming the pip extra.

    Raises:
        BackendUnavailable: the package is not installed (``pip install 'segbench[EXTRA]'``).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BackendUnavailable(
            f"{what} needs the {module.split('.')[0]!r} package: pip install 'segbench[{extra}]'"
        ) from None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_warning(threads: int | None, option: str = "--threads") -> str | None:
    """One warning line when ``threads`` exceeds :func:`available_cores`, else None: more threads than cores
    only compete for them (slower, noisier timings), so the value is used but the user is told."""
    cores = available_cores()
    if not threads or threads <= cores:
        return None
    return (f"warning: {option} {threads} is more than the {cores} CPU cores available to this process; "
            "the threads will compete for cores (slower, noisier timings)")
