"""User-facing errors.

Every foreseeable mistake a user can make (missing file, unknown model, bad config key, undecodable
image) raises :class:`UserError`. The CLI prints its message on one line and exits with code 2; the
Python API lets it propagate so callers can catch it.
"""


class UserError(Exception):
    """Bad input from the user: a path, an option, a file's content. The message is one line that
    names the thing and says what was expected."""
