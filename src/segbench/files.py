"""User files: the one place that reads a user's text files (recipes, class files, split listings).

A leaf module: it imports nothing of segbench but the errors.
"""

from __future__ import annotations

from pathlib import Path

from segbench.errors import UserError


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of a user's file (a recipe, a class file, a split listing).

    Raises:
        UserError: the file is missing, cannot be read (permissions, a folder) or is not UTF-8 text; the
            message names the file and ``what`` it should be.
    """
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except PermissionError:
        raise UserError(f"{path}: cannot read the {what} (permission denied)") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None
