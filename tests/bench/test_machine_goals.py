"""benchmarks/machine_goals.py: the side-by-side table of one CPU kind, written into RESULTS.md in place of that
kind's section (others kept), the goals decided from the rows, and a missing library skipped with a line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "machine_goals.py"


@pytest.fixture(scope="module")
def goals_script():
    spec = importlib.util.spec_from_file_location("machine_goals", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(config, ms, precision="fp32", acc=1.0, **extra):
    return {"config": config, "how": config, "precision": precision, "accuracy_miou": acc, "latency_ms_p50": ms,
            "latency_ms_ci_low": ms * 0.9, "latency_ms_ci_high": ms * 1.1, **extra}  # fmt: skip


def test_goals_compare_best_with_the_fastest_other_and_read_the_roofline(goals_script):
    result = {"rows": [_row("eager", 100.0), _row("openvino", 40.0), _row("segbench best", 35.0)]}
    assert goals_script.goals("lraspp_mobilenet_v3_large", result) == [
        "- lraspp_mobilenet_v3_large: segbench best 35.00 ms against the fastest other whose accuracy holds, openvino "
        "40.00 ms: **met**"]
    result["rows"][-1] = _row("segbench best", 45.0, roofline_fraction=0.7)
    lines = goals_script.goals("fcn_resnet50", result)
    assert lines[0].endswith("openvino 40.00 ms: **not met**") and lines[1].endswith("70.0%: **met**")
    result["rows"][-1] = _row("segbench best", 45.0)  # no roofline measured: said, not guessed
    assert goals_script.goals("fcn_resnet50", result)[1].endswith("not measured (no roofline_fraction in the row)")
    assert "not decided" in goals_script.goals("fcn_resnet50", {"rows": [_row("eager", 1.0)]})[0]
    result = {"rows": [_row("eager", 100.0), _row("nncf", 20.0, "int8", acc=0.9), _row("segbench best", 35.0)]}
    lines = goals_script.goals("lraspp_mobilenet_v3_large", result)  # nncf loses 10 points: named, not raced
    assert lines[0].endswith("whose accuracy holds, eager 100.00 ms: **met**")
    assert lines[1] == ("- lraspp_mobilenet_v3_large: nncf ran faster (20.00 ms) but its accuracy does not hold "
                        "(see the table)")  # fmt: skip


def test_write_section_replaces_its_own_kind_and_keeps_the_others(goals_script, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n## Earlier\n\ntext\n")
    block = lambda key, body: f"<!-- machine_goals: {key} -->\n{body}\n<!-- /machine_goals: {key} -->\n"  # noqa: E731
    goals_script.write_section(path, block("intel/spr", "SPR one"), "intel/spr")
    path.write_text(path.read_text() + "\n## Later\n\nmore\n")
    goals_script.write_section(path, block("amd/zen4", "ZEN4 one"), "amd/zen4")
    goals_script.write_section(path, block("intel/spr", "SPR two"), "intel/spr")
    text = path.read_text()
    assert text.count(goals_script.SECTION) == 1 and "SPR one" not in text
    assert text.index("## Earlier") < text.index("SPR two") < text.index("ZEN4 one") < text.index("## Later")
    assert text.endswith("## Later\n\nmore\n") and not list(tmp_path.glob(".*.tmp"))


def test_smoke_run_writes_the_table_and_skips_a_missing_library(goals_script, tmp_path, monkeypatch, capsys):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n\n<!-- machine_goals: other/kind -->\nkept\n<!-- /machine_goals: other/kind -->\n")
    monkeypatch.setattr(goals_script, "_installed", lambda *modules: "openvino" not in modules)
    code = goals_script.main(["--smoke", "--out", str(out), "--configs", "eager", "openvino", "nncf",
                              "--backends", "eager", "channels_last"])  # fmt: skip
    assert code == 0
    text = out.read_text()
    assert "kept" in text and text.count("<!-- machine_goals: ") == 2
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| lraspp_mobilenet_v3_large |")]  # fmt: skip
    assert [r[1] for r in rows] == ["eager", "segbench best", "openvino", "nncf"]
    eager, best = rows[0], rows[1]
    # LR-ASPP carries the shipped CamVid weights: scored against the ground truth, and eager holds against itself
    assert eager[6] == "1.00" and 0 < float(eager[7]) < 100 and eager[8] == "yes"
    assert best[2].startswith("segbench --backend best: ") and float(best[4]) > 0
    assert 0 < float(best[9]) and eager[9] == ""  # segbench's rows carry their roofline fraction (in %)
    assert rows[2][4] == rows[3][4] == "skipped: openvino not installed"
    assert "64 x 64, batch 1" in text and "- hardware: " in text and "mIoU against the ground truth" in text
    assert "lraspp_mobilenet_v3_large: segbench best " in text and "against the fastest other whose accuracy holds, eager" in text
    assert "openvino skipped (openvino not installed)" in capsys.readouterr().err


def test_trained_networks_are_the_same_in_torchvision_and_segbench(goals_script):
    import torch

    tv, ours, num_classes, trained = goals_script.networks("deeplabv3_mobilenet_v3_large")
    assert trained and num_classes == 11
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(tv(x), ours(x), rtol=1e-4, atol=1e-4)
    masks = goals_script.sample_masks((64, 80), 2)
    assert len(masks) == 2 and masks[0].shape == (1, 64, 80)
    assert set(masks[0].unique().tolist()) <= set(range(11)) | {255}
