"""Export to ONNX, int8 static quantisation, and the check that an exported model still segments correctly.

- :mod:`segbench.export.onnx`: :func:`export_onnx` (dynamic N/H/W), :func:`onnx_session`, ``metadata_props``.
- :mod:`segbench.export.quantize`: :func:`quantize_int8` (ONNX Runtime QDQ int8) and its calibration images.
- :mod:`segbench.export.verify`: :func:`check_onnx` (ONNX Runtime against PyTorch on real images and one input
  of another size).
- :mod:`segbench.export.check`: :func:`export_checked`, which writes a file only after its check passed.

All functions raise :class:`segbench.errors.UserError` (one line) for a missing package, and
:class:`ExportError` when the export or its check fails.
"""

from segbench.export.check import export_checked
from segbench.export.onnx import (
    DEFAULT_OPSET,
    EXPORTERS,
    INPUT_NAME,
    OUTPUT_NAME,
    ExportError,
    export_onnx,
    onnx_session,
    read_metadata,
    write_metadata,
)
from segbench.export.quantize import CalibrationReader, describe_int8, quantize_int8, sample_calibration
from segbench.export.verify import ExportCheck, check_images, check_onnx

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "CalibrationReader",
    "ExportCheck",
    "ExportError",
    "check_images",
    "check_onnx",
    "describe_int8",
    "export_checked",
    "export_onnx",
    "onnx_session",
    "quantize_int8",
    "read_metadata",
    "sample_calibration",
    "write_metadata",
]
