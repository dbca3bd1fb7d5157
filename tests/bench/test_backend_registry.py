"""The backend registry (segbench.bench.backends): one entry of facts per backend, and everything else asks it."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
import torch

from segbench.bench import backends, select, units
from segbench.bench.backends import (
    EXPORTER_MODULES,
    PRECISIONS,
    RUNTIMES,
    Backend,
    backend_names,
    calibration_for,
    get_backend,
    prepare,
    register,
    registered,
)
from segbench.bench.peak import backend_precision
from segbench.cli import main
from segbench.errors import UserError
from segbench.preprocessing import Preprocessing

EXTRAS = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("name", backend_names())
def test_every_backend_states_its_facts(name):
    b = get_backend(name)
    assert b.name == name and b.precision in PRECISIONS and b.runtime in RUNTIMES and b.summary
    assert b.devices and set(b.devices) <= {"cpu", "cuda"} and callable(b.build)
    packages = " ".join(EXTRAS.get(b.extra, [])) if b.extra else ""
    assert all(m in packages for m in b.modules) and bool(b.modules) == bool(b.extra)  # the extra installs them
    assert b.install_hint == (f"pip install 'segbench[{b.extra}]'" if b.extra else "")
    if b.exports_onnx:  # the export of a PyTorch model needs the exporter, which the backend's extra installs
        assert all(m in packages for m in EXPORTER_MODULES)
    assert b.needs_calibration == (b.quantiser is not None) == (b.precision == "int8")
    assert b.onnx_file_runtime in (None, *RUNTIMES) and isinstance(b.native("cpu"), bool)


def test_the_facts_of_the_shipped_backends():
    assert backend_names(precision="bf16") == ("bf16", "openvino_bf16", "compile_bf16")
    assert backend_names(needs_calibration=True) == ("onnxruntime_int8", "openvino_int8", "compile_int8",
                                                     "openvino_nncf_int8")  # fmt: skip
    assert backend_names(runtime="torch") == backends.TORCH_BACKENDS
    assert backends.ALL_BACKENDS == backends.BACKENDS + backends.NATIVE_BACKENDS == backend_names()
    assert {b.name for b in registered() if "cuda" not in b.devices} == {
        "onnxruntime_int8", "openvino", "openvino_bf16", "openvino_int8", "compile_int8", "openvino_nncf_int8"}
    zen3 = {"avx", "avx2", "fma"}  # no bf16 unit: bf16 emulated; int8 through AVX2's vpmaddubsw, native
    assert [b.name for b in registered() if not b.native("cpu", zen3)] == [
        b.name for b in registered() if b.precision == "bf16"]
    old = {"sse", "sse2", "avx"}  # no AVX2 either: only the fp32 backends are native
    assert [b.name for b in registered() if not b.native("cpu", old)] == [
        b.name for b in registered() if b.precision != "fp32"]
    assert get_backend("openvino_nncf_int8").modules == ("openvino", "nncf")


def test_a_name_that_looks_like_a_backend_is_not_one(net):
    for name in ("foo_int8", "openvino_fp16", "my_bf16"):
        with pytest.raises(UserError, match="unknown backend"):
            get_backend(name)
        with pytest.raises(UserError, match="unknown backend"):
            backend_precision(name)  # no longer int8 or bf16 because of its spelling
        with pytest.raises(UserError, match="unknown backend"):
            calibration_for(name, Preprocessing((0.5,) * 3, (0.5,) * 3))
    with pytest.raises(UserError, match="did you mean onnxruntime_int8"):
        prepare(net, "onnxruntime_int9", torch.randn(1, 3, 8, 8))


def test_precision_and_calibration_follow_the_entry():
    assert [backend_precision(b) for b in ("eager", "openvino_bf16", "compile_int8")] == ["fp32", "bf16", "int8"]
    assert calibration_for("eager", Preprocessing((0.5,) * 3, (0.5,) * 3)) is None
    calib = calibration_for("openvino_int8", Preprocessing((0.5,) * 3, (0.5,) * 3))
    assert calib and all(x.dtype == torch.float32 and x.shape[:2] == (1, 3) for x in calib)


def test_native_precision_checks_read_the_cpu_flags(monkeypatch):
    assert backends.cpu_supports_int8("flags\t: fpu avx512f avx512_vnni\n")
    assert backends.cpu_supports_int8("flags\t: fpu amx_tile amx_int8\n")
    assert backends.cpu_supports_int8("flags\t: fpu avx2 fma\n")  # AVX2 int8 (vpmaddubsw), as on Zen 3
    assert not backends.cpu_supports_int8("flags\t: fpu sse4_2 avx\n")
    monkeypatch.setattr(units, "machine_flags", lambda: {"avx2", "fma", "avx512f", "avx512_vnni"})  # Ice Lake
    assert not get_backend("bf16").native("cpu") and get_backend("bf16").native("cuda")
    assert get_backend("eager").native("cpu") and get_backend("compile_int8").native("cpu")
    assert not {"bf16", "openvino_bf16", "compile_bf16"} & set(select.candidates("cpu"))
    monkeypatch.setattr(units, "machine_flags", lambda: {"avx2", "fma", "avx512f", "avx512_bf16"})
    assert get_backend("bf16").native("cpu") and "bf16" in select.candidates("cpu")


def test_best_on_cuda_leaves_out_the_cpu_only_backends():
    assert set(select.candidates("cuda")) <= set(backend_names()) - {
        b.name for b in registered() if "cuda" not in b.devices}
    assert select.candidates("cuda")[0] == "eager"


def test_register_refuses_a_taken_name_and_unknown_facts():
    with pytest.raises(ValueError, match="already registered"):
        register(dataclasses.replace(get_backend("eager")))
    with pytest.raises(ValueError, match="precision"):
        register(dataclasses.replace(get_backend("eager"), name="x", precision="fp8"))
    with pytest.raises(ValueError, match="devices"):
        register(dataclasses.replace(get_backend("eager"), name="x", devices=("tpu",)))
    assert "x" not in backend_names()


def _help_names(command: str, capsys) -> list[str]:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = re.search(r"(?:from: |one of |\(default eager\): )((?:[a-z0-9_]+, )+[a-z0-9_]+)", text).group(1)
    return listed.split(", ")


@pytest.mark.parametrize("command", ["evaluate", "predict", "compare", "benchmark"])
def test_cli_backend_choices_are_the_registry(command, capsys):
    assert _help_names(command, capsys) == list(backend_names())


@pytest.fixture
def added(monkeypatch):
    """A backend added the way a new one is: one entry (removed again after the test)."""

    def build(b, model, example, device, calibration, onnx_file):
        from segbench.bench.predictors import TorchPredictor

        return TorchPredictor(model.to(device).eval(), b.name, device, f"test entry, {len(calibration or [])} calib")

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    return register(Backend("eager_quantised_test", "int8", "torch", ("cpu",), "a test entry", build,
                            quantiser="pt2e"))  # fmt: skip


def test_adding_a_backend_is_one_entry(added, net, capsys):
    predictor = prepare(net, added.name, torch.randn(1, 3, 8, 8), calibration=[torch.randn(1, 3, 8, 8)])
    assert predictor.backend == added.name and predictor.notes == "test entry, 1 calib"
    assert backend_precision(added.name) == "int8" and added.name in backend_names(needs_calibration=True)
    vnni = {"avx2", "fma", "avx512f", "avx512_vnni"}  # an int8 entry is a candidate where int8 is native
    assert added.name in select.candidates("cpu", vnni) and added.name not in select.candidates("cuda")
    assert added.name not in select.candidates("cpu", {"sse", "sse2", "avx"})
    assert _help_names("evaluate", capsys)[-1] == added.name
    from segbench.cli.common import check_backend_args

    args = type("Args", (), {"backend": added.name, "calibration": "somewhere"})()
    check_backend_args(args)  # --calibration is accepted with it: it needs calibration
    with pytest.raises(UserError, match=f"only with an int8 --backend .*{added.name}"):
        check_backend_args(type("Args", (), {"backend": "eager", "calibration": "somewhere"})())


@pytest.fixture
def net():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
