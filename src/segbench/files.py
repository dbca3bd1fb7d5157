"""User files: the one place that reads a user's text files (recipes, class files, split listings) and
the one that prepares output locations before any work is done.

A leaf module: it imports nothing of segbench but the errors.
"""

from __future__ import annotations

import tempfile
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


def _probe_writable(folder: Path, option: str) -> None:
    """Create and delete a temporary file in ``folder``: the only reliable test (root ignores modes, a
    read-only mount refuses everyone, a full disk refuses the write)."""
    try:
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b"0")
            f.flush()
    except OSError as exc:
        raise UserError(f"{option} {folder}: cannot write there ({exc.strerror or exc})") from None


def prepare_output_dir(path: str | Path, overwrite: bool, option: str = "--output") -> Path:
    """Check, before any work, that a command can write its output folder ``path``; create it.

    Raises:
        UserError: ``path`` is a file; a non-empty folder without ``overwrite``; a location that cannot be
            created or written (permissions, read-only file system, full disk). The message names ``option``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a folder; choose a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserError(f"{path}: folder exists and is not empty; choose another {option} or pass --overwrite")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    _probe_writable(path, option)
    return path


def prepare_output_file(path: str | Path, overwrite: bool, option: str = "--output") -> Path:
    """Check, before any work, that a command can write the file ``path`` (its folder is created).

    Raises:
        UserError: ``path`` is a folder; an existing file without ``overwrite``; a folder that cannot be
            created or written. The message names ``option``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: exists; pass --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {path.parent}: cannot create the folder ({exc.strerror or exc})") from None
    _probe_writable(path.parent, option)
    return path
