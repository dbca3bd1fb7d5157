"""``segbench export`` onto a full disk, a read-only folder or a file it may not write: one line naming the file,
exit code 2, and nothing half-written left (neither the output nor a temporary file)."""

from __future__ import annotations

import errno

import pytest

import segbench.files as io_mod
import segbench.export.check as check_mod
from segbench.cli import main

FAULTS = [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
          (errno.EACCES, "Permission denied"), (errno.EPERM, "Operation not permitted")]  # fmt: skip


def _one_line(capsys, code) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("number, reason", FAULTS)
def test_safetensors_export_write_failure(tmp_path, capsys, monkeypatch, number, reason):
    def failing_fsync(fd):  # the bytes are in the temporary file when the disk refuses them
        raise OSError(number, reason)

    monkeypatch.setattr(io_mod.os, "fsync", failing_fsync)
    out = tmp_path / "m.safetensors"
    line = _one_line(capsys, main(["export", "fast_scnn", "--weights", "none", "--output", str(out)]))
    assert f"{out}: cannot write the safetensors file ({reason}); nothing was written there" in line
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize("number, reason", FAULTS[:2])
def test_onnx_export_write_failure_names_the_file(tmp_path, capsys, monkeypatch, number, reason):
    def filling_disk(model, path, **kwargs):  # half a file, then the disk is full; as exporters wrap it
        path.write_bytes(b"\x08\x07partial")
        try:
            raise OSError(number, reason)
        except OSError as exc:
            raise RuntimeError("Failed to export the model with torch.export") from exc

    monkeypatch.setattr(check_mod, "export_onnx", filling_disk)
    out = tmp_path / "m.onnx"
    line = _one_line(capsys, main(["export", "fast_scnn", "--weights", "none", "--format", "onnx",
                                   "--output", str(out)]))  # fmt: skip
    assert f"{out}: cannot write the ONNX file ({reason}); nothing was written there" in line
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_only_the_users_write_errors_become_one_line(tmp_path):
    from segbench.files import write_failure

    path = tmp_path / "m.onnx"
    assert write_failure(path, OSError(errno.EIO, "Input/output error"), "the ONNX file") is None
    assert write_failure(path, RuntimeError("not a disk error"), "the ONNX file") is None
    wrapped = RuntimeError("export failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert str(write_failure(path, wrapped, "the ONNX file")) == (
        f"{path}: cannot write the ONNX file (Disk quota exceeded); nothing was written there")
