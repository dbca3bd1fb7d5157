"""The trust rule: a model file someone else made runs no code of its own unless --trust-remote-code is given.

Each loader gets a file crafted to run code (it writes a marker file when it does); without the flag it is
refused in one line and the marker is not written; with the flag (where the flag lets it load) the marker
shows the file really does run code. Files made the way each library's docs make them, without segbench's
metadata, load and predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from external_nets import tiny_net
from PIL import Image

from segbench.errors import UserError
from segbench.external import ModelInputs, load_any

TRUSTED = ModelInputs(trust_remote_code=True)


class Marker:
    """Unpickling it writes ``path`` (as a pickled payload someone else crafted could do anything)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return exec, (f"open({str(self.path)!r}, 'w').write('ran')",)


def plain_pt2(path: Path) -> Path:
    """A 1x1 convolution exported with dynamic height and width and saved by plain torch.export.save
    (torch.export's tutorial's way: no segbench.json)."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 1).eval()
    dims = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    torch.export.save(torch.export.export(net, (torch.randn(1, 3, 16, 16),), dynamic_shapes=(dims,)), str(path))
    return path


def rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of the zip ``src`` with ``change(name, bytes) -> bytes`` applied to every member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            zout.writestr(name, change(name, zin.read(name)))
    return dst


def photo(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 35, 3), dtype=np.uint8)).save(photos / "a.png")
    return photos


def test_plain_torch_export_file_predicts_through_the_cli(cli, tmp_path):
    path = plain_pt2(tmp_path / "conv.pt2")
    loaded = load_any(str(path))
    loaded.model.eval()  # torch's own module refuses eval(); the wrapper does not pass it on
    assert loaded.info.num_classes == 4 and "no class names, mean, std" in loaded.info.missing
    photos = photo(tmp_path)
    rc, _, err = cli("predict", path, photos, "--output", tmp_path / "out", "--quiet")
    assert rc == 0, err
    assert "no class names, mean, std in its metadata" in err and "Traceback" not in err
    label = np.array(Image.open(tmp_path / "out" / "a_label.png"))
    assert label.shape == (21, 35) and label.max() < 4


def evil_sample_inputs(tmp_path: Path, marker: Path) -> Path:
    """A plain .pt2 whose pickled sample inputs write ``marker`` when unpickled in full."""

    def evil_inputs(name, data):
        if "sample_inputs/" not in name:
            return data
        buf = __import__("io").BytesIO()
        torch.save(((Marker(marker),), {}), buf)
        return buf.getvalue()

    return rewrite(plain_pt2(tmp_path / "plain.pt2"), tmp_path / "evil.pt2", evil_inputs)


def test_every_command_that_loads_models_takes_the_flag():
    from segbench.cli import build_parser

    parser = build_parser()
    for argv in (["predict", "m.pt2", "photos"], ["evaluate", "m.pt2", "--data", "d"], ["compare", "m.pt2"],
                 ["benchmark", "m.pt2"], ["export", "m.pt2", "--output", "o.onnx"]):  # fmt: skip
        assert parser.parse_args([*argv, "--trust-remote-code"]).trust_remote_code is True
        assert parser.parse_args(argv).trust_remote_code is False


def test_benchmark_case_refuses_then_trusts(tmp_path):
    from segbench.bench.runner import run_case

    marker = tmp_path / "marker"
    evil = evil_sample_inputs(tmp_path, marker)
    case = {"model": str(evil), "input_size": [16, 16], "latency": {"min_time_s": 0.01, "budget_s": 0.05,
            "warmup_s": 0}, "e2e": False, "train_step": False}  # fmt: skip
    row = run_case(case)
    assert row["error_kind"] == "user" and "evil.pt2: refused" in row["error"] and not marker.exists()
    run_case({**case, "trust_remote_code": True})
    assert marker.read_text() == "ran"


def test_pt2_whose_sample_inputs_run_code_is_refused(cli, tmp_path):
    marker = tmp_path / "marker"
    evil = evil_sample_inputs(tmp_path, marker)
    rc, out, err = cli("predict", evil, photo(tmp_path), "--output", tmp_path / "out")
    assert rc == 2 and not marker.exists()
    assert err.strip().count("\n") == 0 and "evil.pt2: refused" in err and "--trust-remote-code" in err
    assert "sample_inputs/model.pt does not load with weights_only=True (it unpickles exec)" in err
    # the file is a real threat: with the flag torch unpickles it in full, and the code runs
    try:
        load_any(str(evil), inputs=TRUSTED)
    except UserError:
        pass
    assert marker.read_text() == "ran"


def test_pt2_whose_symbolic_size_is_python_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    plain = plain_pt2(tmp_path / "plain.pt2")
    code = f"exec(\\\"open({str(marker)!r}, 'w').write('ran')\\\") or "

    def evil_expr(name, data):
        if not name.endswith("models/model.json"):
            return data
        text = data.decode()
        assert '"expr_str": "Symbol(' in text
        return text.replace('"expr_str": "Symbol(', f'"expr_str": "{code}Symbol(', 1).encode()

    evil = rewrite(plain, tmp_path / "sym.pt2", evil_expr)
    refused = r"sym.pt2: refused: .*models/model.json has a symbolic size that is Python code.*'exec\("
    with pytest.raises(UserError, match=refused):
        load_any(str(evil))
    assert not marker.exists()
    try:  # sympy.sympify evaluates it: the code runs when torch reads the file
        load_any(str(evil), inputs=TRUSTED)
    except UserError:
        pass
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("payload, part", [("pickled_weight", "does not load with weights_only=True"),
                                            ("opaque", "is a pickled object")])  # fmt: skip
def test_pt2_with_pickled_weights_or_objects_is_refused(tmp_path, payload, part):
    marker = tmp_path / "marker"
    plain = plain_pt2(tmp_path / "plain.pt2")

    def evil_parts(name, data):
        if name.endswith("model_weights_config.json") and payload == "pickled_weight":
            config = json.loads(data)
            config["config"]["weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("weights/weight_0") and payload == "pickled_weight":
            buf = __import__("io").BytesIO()
            torch.save(Marker(marker), buf)
            return buf.getvalue()
        if name.endswith("model_constants_config.json") and payload == "opaque":
            return json.dumps({"config": {"c": {"path_name": "opaque_obj_0", "is_param": False,
                                                "use_pickle": True, "tensor_meta": None}}}).encode()  # fmt: skip
        return data

    evil = rewrite(plain, tmp_path / "w.pt2", evil_parts)
    with pytest.raises(UserError, match=f"w.pt2: refused: .*{part}.*--trust-remote-code"):
        load_any(str(evil))
    assert not marker.exists()


def test_pt2_whose_graph_calls_a_python_function_is_refused(tmp_path):
    plain = plain_pt2(tmp_path / "plain.pt2")

    def python_target(name, data):
        if not name.endswith("models/model.json"):
            return data
        return data.replace(b'"target": "torch.ops.aten.conv2d.default"', b'"target": "torch.nn.functional.conv2d"')

    evil = rewrite(plain, tmp_path / "py.pt2", python_target)
    # refused by segbench's check or, for the dialects that have one, torch's verifier: never built or run
    with pytest.raises(UserError, match="py.pt2: (refused: its graph calls the Python function conv2d, not a torch|"
                                        "cannot read torch.export file .* is not an allowed operator type)"):
        load_any(str(evil))


def test_pt2_guards_code_is_not_run(tmp_path):
    marker = tmp_path / "marker"
    plain = plain_pt2(tmp_path / "plain.pt2")
    code = f"open({str(marker)!r}, 'w').write('ran')".encode().hex()
    guard = f"exec(bytes.fromhex('{code}').decode()) is None"  # torch puts it in "...": no double quotes

    def evil_guards(name, data):
        if not name.endswith("models/model.json"):
            return data
        program = json.loads(data)
        program["guards_code"] = [guard]
        return json.dumps(program).encode()

    evil = rewrite(plain, tmp_path / "guards.pt2", evil_guards)
    x = torch.randn(1, 3, 12, 20)
    with torch.no_grad():
        assert load_any(str(evil)).model(x).shape == (1, 4, 12, 20)
        assert not marker.exists()
        load_any(str(evil), inputs=TRUSTED).model(x)  # torch exec()s the guards it was given
    assert marker.read_text() == "ran"


def test_plain_torchscript_file_without_metadata(tmp_path):
    path = tmp_path / "plain_ts.pt"
    torch.jit.save(torch.jit.script(tiny_net(num_classes=3)), str(path))
    loaded = load_any(str(path))
    loaded.model.eval()
    assert loaded.info.kind == "torchscript" and loaded.info.num_classes == 3 and loaded.info.missing
    x = torch.randn(1, 3, 19, 23)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), tiny_net(num_classes=3)(x), atol=1e-5)


def custom_code_folder(folder: Path, marker: Path) -> Path:
    """A transformers folder whose config.json names its own modeling code (auto_map); importing that code
    writes ``marker``."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "segbench_custom", "architectures": ["CustomSeg"], "num_labels": 2,
        "auto_map": {"AutoConfig": "modeling_custom.CustomConfig",
                     "AutoModelForSemanticSegmentation": "modeling_custom.CustomSeg"}}))  # fmt: skip
    (folder / "modeling_custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig, PreTrainedModel\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'segbench_custom'\n"
        "class CustomSeg(PreTrainedModel):\n    config_class = CustomConfig\n"
    )
    return folder


def test_hf_folder_with_its_own_code_is_refused_and_stdin_is_never_read(tmp_path):
    pytest.importorskip("transformers", reason="hf: specs need pip install -e '.[hf]'")
    marker = tmp_path / "marker"
    folder = custom_code_folder(tmp_path / "custom", marker)
    photos = photo(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    # a 'y' waiting on stdin, as a user would type at transformers' prompt: nothing reads it
    proc = subprocess.run([sys.executable, "-m", "segbench.cli", "predict", f"hf:{folder}", str(photos),
                           "--output", str(tmp_path / "out")], input="y\n", capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and not marker.exists(), proc.stderr
    assert len(lines) == 1 and "custom/config.json names modeling code of its own (auto_map)" in lines[0]
    assert "--trust-remote-code" in lines[0] and "[y/N]" not in proc.stdout + proc.stderr


def test_hf_custom_code_runs_only_with_the_flag(tmp_path, monkeypatch):
    pytest.importorskip("transformers", reason="hf: specs need pip install -e '.[hf]'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    marker = tmp_path / "marker"
    folder = custom_code_folder(tmp_path / "custom", marker)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("something asked on stdin"))
    with pytest.raises(UserError, match="refused: .*auto_map"):
        load_any(f"hf:{folder}")
    assert not marker.exists()
    with pytest.raises(UserError, match="cannot load it as a semantic segmentation model"):
        load_any(f"hf:{folder}", inputs=TRUSTED)  # no weights in the folder: it fails, after its code ran
    assert marker.read_text() == "ran"


def test_plain_pt2_benchmark_row(tmp_path):
    from segbench.bench.runner import run_case

    row = run_case({"model": str(plain_pt2(tmp_path / "conv.pt2")), "input_size": [16, 24], "e2e": False,
                    "latency": {"min_time_s": 0.01, "budget_s": 0.05, "warmup_s": 0}})  # fmt: skip
    assert row["error"] is None and row["latency_ms_p50"] > 0 and row["params"] == 3 * 4 + 4
    assert "torch.export program's graph is fixed" in row["train_error"]


@pytest.mark.parametrize("expr, safe", [
    ("Symbol('s16', positive=True, integer=True)", True), ("Mul(Integer(3), Symbol('s16'), s82)", True),
    ("s16 + 2*s82", True), ("Max(2, FloorDiv(Symbol('s1'), 4))", True),
    ("exec('x')", False), ("__import__(1)", False), ("Symbol(chr(95))", False), ("Max('1+1')", False),
    ("s1.__class__", False), ("lambda: 1", False), ("Symbol('a', integer='x')", False), ("Max(b'x', 1)", False),
    ("Symbol('s1')[0]", False), ("sympify(s1)", False),
])  # fmt: skip
def test_symbolic_sizes_that_sympify_could_run_are_told_apart(expr, safe):
    from segbench.external.pt2 import _safe_sym_expr

    assert _safe_sym_expr(expr) is safe
