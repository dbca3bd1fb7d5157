"""segbench.config: strict YAML recipes, types, nested sections and --set overrides."""

import dataclasses

import pytest

from segbench.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict, load_config
from segbench.errors import UserError


def _recipe(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg == TrainConfig()
    assert cfg.model.name == "fast_scnn" and cfg.optim.lr == 0.01 and cfg.data.crop_size == [360, 480]


def test_recipe_values_are_read(tmp_path):
    path = _recipe(tmp_path, "iters: 50\ndata:\n  root: /d\n  crop_size: [64, 96]\noptim:\n  lr: 1\nmodel:\n  aux_loss: true\n")
    cfg = load_config(path)
    assert cfg.iters == 50 and cfg.data.root == "/d" and cfg.data.crop_size == [64, 96]
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # int accepted for float
    assert cfg.model.aux_loss is True
    assert cfg.data.hflip is True and cfg.batch_size == 8  # untouched defaults kept


def test_unknown_top_level_key_names_it_and_the_valid_ones(tmp_path):
    with pytest.raises(UserError) as info:
        load_config(_recipe(tmp_path, "iter: 10\n"))
    msg = str(info.value)
    assert "unknown config key 'iter'" in msg
    assert "valid keys:" in msg and "iters" in msg and "batch_size" in msg


def test_unknown_nested_key(tmp_path):
    with pytest.raises(UserError) as info:
        load_config(_recipe(tmp_path, "optim:\n  lrr: 0.1\n"))
    msg = str(info.value)
    assert "unknown config key 'optim.lrr'" in msg
    assert "optim.lr" in msg and "optim.momentum" in msg and "optim.warmup_iters" in msg


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"iters": "many"}, "iters"),
        ({"iters": 1.5}, "iters"),
        ({"iters": True}, "iters"),  # bool is not an int here
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"data": {"hflip": "yes please"}}, "data.hflip"),
        ({"data": {"crop_size": 64}}, "data.crop_size"),
        ({"data": {"crop_size": [64, "x"]}}, "data.crop_size[1]"),
        ({"data": "here"}, "data"),
        ({"model": {"name": 3}}, "model.name"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(UserError) as info:
        config_from_dict(data)
    assert f"config key '{key}'" in str(info.value)


def test_set_overrides_are_parsed_as_yaml(tmp_path):
    path = _recipe(tmp_path, "optim:\n  lr: 0.1\n")
    cfg = load_config(
        path,
        ["optim.lr=0.5", "data.crop_size=[32, 48]", "data.hflip=false", "iters=7", "data.root=/some/where",
         "model.name=lraspp_mobilenet_v3_large"],
    )  # fmt: skip
    assert cfg.optim.lr == 0.5 and cfg.data.crop_size == [32, 48] and cfg.data.hflip is False
    assert cfg.iters == 7 and cfg.data.root == "/some/where" and cfg.model.name == "lraspp_mobilenet_v3_large"
    assert cfg.optim.momentum == 0.9


def test_set_override_errors():
    with pytest.raises(UserError, match="expected key=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(UserError, match="expected key=value"):
        apply_overrides({}, ["=3"])
    with pytest.raises(UserError, match="'iters' is not a section"):
        apply_overrides({"iters": 5}, ["iters.x=1"])
    with pytest.raises(UserError, match="unknown config key 'optim.lrr'"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(UserError, match="config key 'iters'"):
        load_config(None, ["iters=ten"])


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such recipe file"):
        load_config(tmp_path / "absent.yaml")


def test_invalid_yaml(tmp_path):
    with pytest.raises(UserError) as info:
        load_config(_recipe(tmp_path, "data: [unclosed\n  root: x\n"))
    assert "not valid YAML" in str(info.value) and "\n" not in str(info.value)


def test_recipe_must_be_a_mapping(tmp_path):
    with pytest.raises(UserError, match="must be a mapping"):
        load_config(_recipe(tmp_path, "- a\n- b\n"))


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(_recipe(tmp_path, "")) == TrainConfig()


def test_round_trip_through_plain_data():
    cfg = load_config(None, ["optim.lr=0.3", "data.scale_range=[1, 2]"])
    data = config_to_dict(cfg)
    assert data["optim"]["lr"] == 0.3 and data["data"]["scale_range"] == [1.0, 2.0]
    assert config_from_dict(data) == cfg
    assert set(data) == {f.name for f in dataclasses.fields(TrainConfig)}
