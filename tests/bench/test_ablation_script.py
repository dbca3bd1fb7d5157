"""benchmarks/camvid_ablation.py on the coloured-shapes data: each variant trains once in its own process,
the table holds its figures and its difference to the baseline, and a second call reads the finished runs
instead of training again."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "camvid_ablation.py"


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_two_variants_train_once_and_tabulate(shapes_root, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "data: {crop_size: [32, 32], scale_range: [1.0, 1.0], val_max_images: 2}\n"
        "model: {name: fast_scnn}\noptim: {lr: 0.05}\nbatch_size: 2\nval_every: 2\nlog_every: 1\n"
        "tensorboard: false\n"
    )
    args = ["--data", str(shapes_root), "--recipe", str(recipe), "--iters", "2", "--variants", "baseline,ema",
            "--out", str(tmp_path / "abl")]  # fmt: skip
    first = _run(args, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("$ ") == 2  # one training command per variant
    results = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [r["name"] for r in results] == ["baseline", "ema"]
    assert all(0 <= r["miou"] <= 100 for r in results)
    assert results[1]["sets"] == ["ema_decay=0.999"]
    table = (tmp_path / "abl" / "ablation.md").read_text()
    ema_row = next(line for line in table.splitlines() if line.startswith("| ema "))
    assert f"{results[1]['miou'] - results[0]['miou']:+.2f}" in ema_row
    second = _run(args, tmp_path)
    assert second.returncode == 0 and "$ " not in second.stdout  # finished runs are read, not retrained
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text()) == results


def test_unknown_variant_is_one_line(tmp_path):
    done = _run(["--data", str(tmp_path), "--variants", "baseline,warp"], tmp_path)
    assert done.returncode == 2
    assert "--variants: unknown warp" in done.stderr and "Traceback" not in done.stderr


def test_every_variant_is_a_valid_change_of_the_default_recipe():
    import importlib.util

    from segbench.config import load_config

    spec = importlib.util.spec_from_file_location("camvid_ablation", SCRIPT)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    base = load_config(ablation.DEFAULT_RECIPE)
    for name, (_, overrides) in ablation.VARIANTS.items():
        cfg = load_config(ablation.DEFAULT_RECIPE, overrides)  # a misspelt key or a bad value raises
        assert (cfg == base) == (name == "baseline"), name  # each variant changes the recipe, the baseline does not
