"""The weights specs (segbench.models.builders.WEIGHTS): every spec fits its builder, zoo specs match the
shipped files, and a missing zoo file fails with a message saying how to supply it."""

import pytest
import torch

from segbench.errors import UserError
from segbench.models import available_weights, build_model, list_models, load_model
from segbench.models import weights as weights_mod
from segbench.models.builders import WEIGHTS
from segbench.models.pretrained import read_checkpoint

SPECS = [spec for tags in WEIGHTS.values() for spec in tags.values()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_num_params_and_classifier_match_the_builder(spec):
    assert spec.arch in list_models()
    kwargs = {"num_classes": len(spec.classes.names), **({"aux_loss": True} if spec.aux else {})}
    with torch.device("meta"):
        model = build_model(spec.arch, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == spec.num_params
    assert model.state_dict()[spec.classifier].shape[0] == len(spec.classes.names)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.file], ids=lambda s: s.name)
def test_zoo_spec_matches_its_shipped_file(spec):
    _, meta = read_checkpoint(weights_mod.zoo_dir() / spec.file)
    assert meta["arch"] == spec.arch and meta["class_names"] == list(spec.classes.names)
    assert tuple(meta["mean"]) == spec.preprocessing.mean and tuple(meta["std"]) == spec.preprocessing.std
    assert spec.tag in available_weights(spec.arch)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.torchvision], ids=lambda s: s.name)
def test_torchvision_spec_url_names_the_sha256_prefix(spec):
    name = spec.url.rsplit("/", 1)[-1]
    assert name.startswith(spec.arch.split("_")[0]) and "-" in name and name.endswith(".pth")


def test_missing_zoo_file_says_how_to_supply_it(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_mod, "zoo_dir", lambda: tmp_path)
    with pytest.raises(UserError, match=r"fast_scnn.camvid: the weights file fast_scnn.camvid.safetensors is missing"):
        load_model("fast_scnn.camvid")


@pytest.mark.parametrize("spec", [s for s in SPECS if s.file], ids=lambda s: s.name)
def test_zoo_card_states_the_preprocessing_it_was_trained_and_is_run_with(spec):
    from segbench.engine.prepare import TRAIN_PREPROCESSING

    card = (weights_mod.zoo_dir() / spec.file.replace(".safetensors", ".md")).read_text()
    assert "\n## Preprocessing\n" in card
    section = card.split("\n## Preprocessing\n", 1)[1].split("\n## ", 1)[0]
    assert f"{spec.preprocessing.describe()}." in section
    assert spec.preprocessing == TRAIN_PREPROCESSING == load_model(spec.name).info.preprocessing
