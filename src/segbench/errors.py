"""User-facing errors, the one-line form of any exception, and optional dependencies.

Every foreseeable mistake a user can make (missing file, unknown model, bad config key, undecodable
image) raises :class:`UserError`. The CLI prints its message on one line and exits with code 2; the
Python API lets it propagate so callers can catch it. Library messages name the parameter; the CLI's
name the flag.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class UserError(ValueError):
    """Bad input from the user: a path, an option, a file's content. The message is one line that
    names the thing and says what was expected."""


class BackendUnavailable(UserError):
    """The backend's package is not installed, or this device cannot run it. One line, naming the fix."""


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
