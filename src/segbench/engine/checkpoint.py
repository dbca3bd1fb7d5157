"""Checkpoints: full training state (``.pt``, atomic) and small fp16 safetensors for shipping."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from torch import nn

from segbench.data.io import write_bytes_atomic
from segbench.errors import UserError


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` ``state`` to ``path`` atomically (temporary file + rename): a write that fails (full
    disk, read-only folder) leaves the file already at ``path`` as it was and no temporary file.

    Raises:
        UserError: the file cannot be written; the message names it (a :class:`~segbench.files.WriteError`
            for a full disk, a read-only folder or no permission).
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        write_bytes_atomic(path, buf.getvalue(), "the checkpoint")
    except OSError as exc:
        raise UserError(f"{path}: cannot write the checkpoint ({exc.strerror or exc}); stopped, the file on disk "
                        "is unchanged") from None  # fmt: skip


def save_safetensors(model: nn.Module, meta: dict, path: str | Path, dtype: torch.dtype = torch.float16) -> int:
    """Write the model's weights as safetensors (floating tensors cast to ``dtype``) with ``meta`` as
    JSON-encoded metadata; atomic. Returns the file size in bytes.

    Raises:
        WriteError: a full disk, a read-only folder or no permission; one line naming ``path``, nothing left.
    """
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()
    }
    metadata = {"format": "1", **{k: json.dumps(v) for k, v in meta.items()}}
    data = st_save(state, metadata=metadata)
    write_bytes_atomic(path, data, "the safetensors file")
    return len(data)
