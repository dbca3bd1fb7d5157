"""The predictors the backends of :mod:`segbench.bench.backends` return: one ``nn.Module`` per runtime (PyTorch,
ONNX Runtime, OpenVINO), each mapping float32 ``(N, 3, H, W)`` inputs to float32 logits ``(N, C, H, W)``.

Which backend makes which predictor, and how, is decided in :mod:`segbench.bench.backends` (the registry); the
classes here know no backend names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from segbench.export.onnx import INPUT_NAME, OUTPUT_NAME

__all__ = ["OnnxRuntimePredictor", "OpenVINOPredictor", "Predictor", "TorchPredictor"]


class Predictor(nn.Module):
    """A prepared model: ``predictor(x)`` maps float32 ``(N, 3, H, W)`` to float32 logits ``(N, C, H, W)``.

    It is an ``nn.Module`` so that code written for modules (``.eval()``, ``.to(device)``, evaluation loops)
    accepts it; ``.to()`` does not move an ONNX Runtime or OpenVINO model (they stay where prepared).

    Attributes:
        backend: the backend's name (:func:`segbench.bench.backends.backend_names`).
        device: the device inputs are expected on and logits are returned on.
        notes: one line saying what was done (precision, memory format, export time, calibration, threads).
        onnx_path: the ONNX file run (ONNX Runtime and OpenVINO backends), else None.
    """

    def __init__(self, backend: str, device: str, notes: str = "") -> None:
        super().__init__()
        self.backend = backend
        self.device = str(device)
        self.notes = notes
        self.onnx_path: Path | None = None
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, mode: bool = True) -> Predictor:
        """Predictors run inference only: they and the network inside stay in eval mode whatever ``mode`` is
        (code that restores a module's mode, like a benchmark's ``model.train(was_training)``, cannot switch
        batch normalisation to batch statistics)."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, device={self.device!r}, notes={self.notes!r}"


class TorchPredictor(Predictor):
    def __init__(
        self,
        module: nn.Module,
        backend: str,
        device: str,
        notes: str,
        *,
        channels_last: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        super().__init__(backend, device, notes)
        self.module = module
        self.channels_last = channels_last
        self.autocast = autocast
        self._device_type = torch.device(device).type
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.autocast is not None:
                with torch.autocast(self._device_type, dtype=self.autocast):
                    logits = self.module(x)
            else:
                logits = self.module(x)
            return logits.float()


class OnnxRuntimePredictor(Predictor):
    def __init__(self, session, backend: str, device: str, notes: str, num_classes: int, keep) -> None:
        super().__init__(backend, device, notes)
        self.session = session
        self.num_classes = num_classes
        self._keep = keep  # the temporary folder of the ONNX file lives as long as the predictor
        self._cuda = torch.device(device).type == "cuda"

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        if not self._cuda:
            array = x.detach().to("cpu", torch.float32).contiguous().numpy()
            return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])
        # CUDA: bind torch's buffers, no copies through host memory.
        x = x.detach().to(self.device, torch.float32).contiguous()
        n, _, h, w = x.shape
        out = torch.empty((n, self.num_classes, h, w), device=x.device, dtype=torch.float32)
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, list(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", index, np.float32, list(out.shape), out.data_ptr())
        torch.cuda.current_stream(x.device).synchronize()  # x is written before ONNX Runtime reads it
        self.session.run_with_iobinding(binding)
        return out


class OpenVINOPredictor(Predictor):
    """Compiles one static-shape OpenVINO model per input shape (OpenVINO's CPU plugin is fastest on static
    shapes); the first call at a new shape pays the compile time."""

    def __init__(self, core, ov_model, config: dict, notes: str, keep, backend: str) -> None:
        super().__init__(backend, "cpu", notes)
        self._core, self._model, self._config, self._keep = core, ov_model, config, keep
        self._requests: dict[tuple[int, ...], object] = {}

    def _request(self, shape: tuple[int, ...]):
        request = self._requests.get(shape)
        if request is None:
            model = self._model.clone()
            model.reshape({model.input(0).get_any_name(): list(shape)})
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            if len(self._requests) >= 8:  # a bounded cache: sweeps over sizes do not grow without end
                self._requests.pop(next(iter(self._requests)))
            self._requests[shape] = request
        return request

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        request = self._request(tuple(array.shape))
        result = request.infer({0: array})  # returns copies (share_outputs=False)
        return torch.from_numpy(np.asarray(result[0]))
