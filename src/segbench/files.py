"""User files: the one place that reads a user's text files (recipes, class files, split listings), the
one writer of output files (:func:`write_bytes_atomic`: never half a file, one line naming the file when the
disk refuses it), the one that prepares output locations before any work is done, and the lock that keeps
two commands from writing the same output at once.

A leaf module: it imports nothing of segbench but the errors.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import re
import shutil
import sys
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


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
"""The errors of writing that are the user's to fix (full disk or quota, read-only file system, permissions)."""


class WriteError(UserError):
    """A write the user must make room or permission for (:data:`WRITE_ERRNOS`); ``path`` is the file and
    ``reason`` the system's words (``No space left on device``). The message is one line naming both."""

    def __init__(self, message: str, path: str | Path, reason: str):
        super().__init__(message)
        self.path, self.reason = Path(path), reason


def write_failure(path: str | Path, exc: BaseException, what: str) -> WriteError | None:
    """The one-line :class:`WriteError` for a failed write of ``path`` (``what``: "the ONNX file", ...) when
    ``exc`` (or what caused it: exporters wrap the ``OSError``) is a full disk, a read-only file system or a
    permission error; None for any other error. The writer must have removed its temporary files."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            reason = exc.strerror or os.strerror(exc.errno)
            return WriteError(f"{path}: cannot write {what} ({reason}); nothing was written there", path, reason)
        exc = exc.__cause__ or exc.__context__
    return None


def write_bytes_atomic(path: str | Path, data: bytes, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, ``fsync`` and ``os.replace``, so a
    reader never sees a half-written file; permissions follow the umask like a plain ``open``. Every output
    file of segbench is written through here (reports, results.json, benchmark.json, labels and overlays,
    checkpoints, safetensors). On any failure the temporary file is removed and the file already at ``path``
    is left as it was.

    Args:
        path: The file to write; its folder is created when missing.
        data: The whole content.
        what: What the file is, for the error message (``"the checkpoint"``).

    Returns:
        ``path``.

    Raises:
        WriteError: a full disk or quota, a read-only file system, no permission (:data:`WRITE_ERRNOS`); one
            line naming ``path`` and the reason.
        OSError: any other failure of the system.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        failure = write_failure(path, exc, what) if isinstance(exc, OSError) else None
        if failure is not None:
            raise failure from None
        raise
    return path


SKIPPED_FILE = "skipped.txt"
"""The full list of a batch job's skipped inputs in its output folder: ``FILE<tab>REASON`` per line."""


def skipped_by_reason(skipped: list[dict]) -> list[tuple[str, list[str]]]:
    """The skipped inputs (``{"file", "reason"}``) grouped by reason, most frequent first: ``(reason, file
    names)``, the reason without the file's own name (decoders put it in) so that one reason is one group."""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        file, reason = str(s["file"]), str(s["reason"])
        reason = reason.removeprefix(f"{file}: ")  # the file is named after the reason
        for quoted in (f"'{file}'", f'"{file}"', file):
            reason = reason.replace(quoted, "")
        reason = " ".join(reason.replace(" )", ")").replace("()", "").split())
        by_reason.setdefault(reason, []).append(Path(file).name)
    return sorted(by_reason.items(), key=lambda kv: -len(kv[1]))


def write_skipped(folder: str | Path | None, skipped: list[dict]) -> Path | None:
    """Write every skipped input to ``folder/skipped.txt`` (:data:`SKIPPED_FILE`, atomically); its path, or None
    when nothing was skipped or there is no folder.

    Raises:
        WriteError: the list cannot be written (a full disk, a read-only folder; one line naming it).
    """
    if not skipped or folder is None:
        return None
    lines = "".join(f"{s['file']}\t{' '.join(str(s['reason']).split())}\n" for s in skipped)
    return write_bytes_atomic(Path(folder) / SKIPPED_FILE, lines.encode(), "the list of skipped inputs")


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
    """Check, before any work, that a command can write its output folder ``path``; create and lock it
    (:func:`lock_output`) and remove the temporary files an interrupted command left in it.

    Raises:
        UserError: ``path`` is a file; a non-empty folder without ``overwrite``; a location that cannot be
            created or written (permissions, read-only file system, full disk); a folder another command is
            writing. The message names ``option``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    _probe_writable(path, option)
    lock_output(path, option)
    remove_stale_temporaries(path)
    if not overwrite and any(p.name != LOCK_NAME for p in path.iterdir()):
        raise UserError(f"{path}: folder exists and is not empty; choose another {option} or pass --overwrite")
    return path


def prepare_output_file(path: str | Path, overwrite: bool, option: str = "--output") -> Path:
    """Check, before any work, that a command can write the file ``path`` (its folder is created); lock it
    (:func:`lock_output`) and remove the temporary files an interrupted command left for it.

    Raises:
        UserError: ``path`` is a folder; an existing file without ``overwrite``; a folder that cannot be
            created or written; a file another command is writing. The message names ``option``.
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
    lock_output(path, option)
    remove_stale_temporaries(path)
    return path


# The temporary names segbench writes before os.replace (tempfile.mkstemp with prefix ".NAME." and one of
# these suffixes): atomic writes (.tmp) and exports (.onnx, .int8.onnx, and the exporters' .data beside them).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(\.tmp|\.onnx|\.int8\.onnx)(\.data)?$")


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files a killed command left for the output ``path`` (a folder: every temporary
    file in it; a file: those of that name beside it) and say so on stderr, one line. Call it only while
    holding :func:`lock_output` on ``path``: no other command can be writing them then.

    Returns:
        The files removed.
    """
    path = Path(path)
    folder, name = (path, None) if path.is_dir() else (path.parent, path.name)
    removed = []
    for p in folder.iterdir():
        m = _TEMPORARY.match(p.name)
        if m and (name is None or m["name"] == name) and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    if removed:
        print(f"segbench: removed {len(removed)} temporary file(s) left by an interrupted command in {folder} "
              f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})", file=sys.stderr)
    return removed


LOCK_NAME = ".segbench.lock"
"""The lock file inside a locked output folder; a locked output file ``F`` has ``.F.segbench.lock`` beside it."""

_HELD: dict[str, int] = {}  # lock file -> open descriptor holding its flock, in this process


def _lock_file(path: Path) -> Path:
    return path / LOCK_NAME if path.is_dir() else path.parent / f".{path.name}{LOCK_NAME}"


def _try_flock(lock: Path) -> int | None:
    """A descriptor of ``lock`` holding an exclusive ``flock`` on the file now at that name, or None when another
    process holds it. A lock file left by a killed process holds no ``flock`` and is taken over."""
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # released (and removed) between our open and our flock
            same = False
        if same:
            return fd
        os.close(fd)


def lock_output(path: str | Path, option: str = "--output") -> Path:
    """Lock the output folder or file ``path`` for this process until :func:`release_output_locks` (the CLI
    calls it when a command ends; it also runs at exit). Re-entrant within one process.

    The lock is an exclusive ``flock`` on a lock file (:data:`LOCK_NAME`) holding the owner's pid; the kernel
    drops it when the owner dies, so the lock file of a killed command is taken over. Without ``fcntl``
    (Windows) outputs are not locked.

    Raises:
        UserError: another process holds the lock; the message names ``option``, the folder and its pid.
    """
    path = Path(path)
    lock = _lock_file(path)
    key = str(lock.resolve())
    if key in _HELD:
        return lock
    try:
        fd = _try_flock(lock)
    except ImportError:
        return lock
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot create the lock file {lock.name} ({exc.strerror or exc})") from None
    if fd is None:
        try:
            pid = lock.read_text(encoding="ascii").strip() or "unknown"
        except (OSError, UnicodeDecodeError):
            pid = "unknown"
        raise UserError(f"{option} {path}: in use by another segbench command (pid {pid}); wait for it to end or "
                        "choose another output")  # fmt: skip
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[key] = fd
    return lock


def _release(key: str) -> None:
    fd = _HELD.pop(key)
    with contextlib.suppress(OSError):
        os.unlink(key)  # before closing: a process arriving later locks a new file, never this one
    os.close(fd)


def release_output_locks() -> None:
    """Release (and remove) every lock :func:`lock_output` took in this process."""
    for key in list(_HELD):
        _release(key)


@contextlib.contextmanager
def output_locked(path: str | Path, option: str = "--output"):
    """:func:`lock_output` for the ``with`` block only (a lock this process already held stays held).

    Raises:
        UserError: as :func:`lock_output`.
    """
    key = str(_lock_file(Path(path)).resolve())
    held_before = key in _HELD
    lock_output(path, option)
    try:
        yield
    finally:
        if not held_before and key in _HELD:
            _release(key)


atexit.register(release_output_locks)


def staging_folder(path: str | Path) -> Path:
    """A new empty folder beside ``path`` (``.NAME.XXXXXXXX.staging``, same file system) to write a whole output
    folder into before :func:`replace_folder` puts it in place; the staging folders a killed command left for
    ``path`` are removed first (call it while holding :func:`lock_output` on ``path``).

    Raises:
        WriteError: the parent folder refuses it (full disk, read-only, no permission).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f".{path.name}.*.staging"):
        shutil.rmtree(old, ignore_errors=True)
    try:
        folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".staging"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(folder, 0o777 & ~umask)  # mkdtemp makes 0700; a report folder is made like a plain mkdir's
        return folder
    except OSError as exc:
        failure = write_failure(path, exc, "the output folder")
        if failure is None:
            raise
        raise failure from None


def replace_folder(new: str | Path, path: str | Path, what: str = "the output folder") -> Path:
    """Put the folder ``new`` (from :func:`staging_folder`) in place of ``path`` as a whole: the old folder is
    renamed aside, ``new`` renamed to ``path``, then the old one deleted; a reader sees the old folder or the new
    one, never a mix. The lock this process holds on ``path`` (:func:`lock_output`) moves into the new folder.
    On a failure the old folder is put back as it was and ``new`` is removed.

    Raises:
        WriteError: a rename refused (read-only, no permission); the message names ``path``.
        OSError: any other failure of the system.
    """
    new, path = Path(new), Path(path)
    lock, aside = path / LOCK_NAME, None
    moved_lock = False
    try:
        if path.exists():
            if lock.exists():
                os.rename(lock, new / LOCK_NAME)  # the same inode: the flock this process holds goes with it
                moved_lock = True
            aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, aside)  # onto the empty folder just made
        os.replace(new, path)
    except BaseException as exc:
        if aside is not None:
            with contextlib.suppress(OSError):
                if path.exists():
                    aside.rmdir()
                else:
                    os.replace(aside, path)
        if moved_lock:
            with contextlib.suppress(OSError):
                os.rename(new / LOCK_NAME, lock)
        shutil.rmtree(new, ignore_errors=True)
        failure = write_failure(path, exc, what) if isinstance(exc, OSError) else None
        if failure is not None:
            raise WriteError(f"{path}: cannot put the new {what.removeprefix('the ')} in place "
                             f"({failure.reason}); the old one is kept as it was", path, failure.reason) from None
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return path
