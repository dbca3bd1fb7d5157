"""int8 calibration streams its images: peak memory does not grow with the number of calibration images."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime", reason="needs the onnx extra (pip install -e '.[onnx]')")

from segbench.export import export_onnx  # noqa: E402

# One image's activations of this network at 128 x 128: 13 float32 tensors of 64 x 128 x 128 (4 MiB each),
# about 52 MiB. Holding the activations of every image (as ONNX Runtime's calibrators do without strided
# calibration) grows the peak by roughly 55 MiB per image: 8 images instead of 1 then add about 400 MiB.
_CALIBRATE = textwrap.dedent(
    """
    import resource, sys, torch
    from segbench.export.quantize import quantize_int8
    path, n, method = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    g = torch.Generator().manual_seed(1)
    images = [torch.randn(1, 3, 128, 128, generator=g) for _ in range(n)]
    used = quantize_int8(path, path + f".{n}.{method}.onnx", images, method=method, fallback=False)
    print(used, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """
)


def _peak_rss_mib(model_path, n: int, method: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CALIBRATE, str(model_path), str(n), method],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    used, rss = out.stdout.split()[-2:]
    assert used == method
    return float(rss)


def test_calibration_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Percentile (the default) keeps histograms; its peak grew about 400 MiB from 1 to 8 images here before
    calibration was strided (MinMax reduces each tensor inside the graph and grows little either way)."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
    for _ in range(5):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Conv2d(64, 4, 1)).eval()
    path = export_onnx(net, tmp_path / "net.onnx", torch.randn(1, 3, 128, 128))
    one, eight = _peak_rss_mib(path, 1, "percentile"), _peak_rss_mib(path, 8, "percentile")
    assert eight - one < 50, f"peak RSS {one:.0f} MiB with 1 image, {eight:.0f} MiB with 8"
