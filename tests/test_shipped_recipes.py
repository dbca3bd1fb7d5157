"""Every recipe shipped in configs/ and every training state's config.yaml in training/ loads as a typed
TrainConfig, names a registered network and ships no machine path (``data.root`` is given with ``--set``)."""

from pathlib import Path

import pytest

from segbench.config import load_config
from segbench.models import list_models

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "configs").rglob("*.yaml")) + sorted((REPO / "training").glob("*/config.yaml"))


def test_the_recipes_are_found():
    assert any(p.parent.name == "camvid" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO)) for p in RECIPES])
def test_recipe_loads_names_a_network_and_no_machine_path(path):
    cfg = load_config(path)
    assert cfg.model.name in list_models()
    assert cfg.data.root == "", "data.root is passed with --set data.root=/path/to/data"
    assert cfg.iters > 0 and cfg.val_every > 0
    assert cfg.out_dir.startswith("runs/")
    # the recipe validates on frames it does not train on: another split, or other groups of the same one
    assert cfg.data.train_split != cfg.data.val_split or cfg.data.val_groups


@pytest.mark.parametrize("path", [p for p in RECIPES if p.stem.endswith("_seq_long")],
                         ids=lambda p: p.stem)
def test_long_runs_keep_their_state_where_the_next_stretch_resumes(path):
    cfg = load_config(path)
    assert cfg.data.train_split == "seq_train" and cfg.data.val_split == "seq_val"
    assert cfg.iters % cfg.ckpt_every == 0 and cfg.val_every % cfg.ckpt_every == 0  # stop on a checkpoint
    assert cfg.data.num_workers == 1  # per-sample seeds: a resume elsewhere draws the same batches
