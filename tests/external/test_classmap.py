"""Scoring a model on data labelled with other classes: matching by name and synonyms, --class-map, the
logits and targets it maps, and evaluate end to end."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

from segbench.classes import CAMVID, CITYSCAPES, IGNORE_INDEX
from segbench.cli import main
from segbench.compare import corruption_runners
from segbench.data.datasets import open_dataset
from segbench.engine.robustness import CorruptionPlan, corruption_sweep
from segbench.errors import UserError
from segbench.external import class_mapping, read_class_map


def test_cityscapes_names_onto_camvid_by_name_and_synonym():
    mapping = class_mapping(CITYSCAPES.names, CAMVID.names)
    pairs = {CITYSCAPES.names[m]: CAMVID.names[d] for m, d in mapping.pairs}
    assert pairs == {"road": "Road", "sidewalk": "Pavement", "building": "Building", "fence": "Fence",
                     "pole": "Pole", "traffic sign": "SignSymbol", "vegetation": "Tree", "sky": "Sky",
                     "person": "Pedestrian", "car": "Car", "bicycle": "Bicyclist"}  # fmt: skip
    assert mapping.unmatched_data == []
    text = mapping.describe()
    assert text.startswith("classes matched by class name: road -> Road") and "(left out): wall, traffic light" in text
    assert class_mapping(CAMVID.names, CAMVID.names) is None
    assert class_mapping(["0", "1"], CAMVID.names) is None


def test_mapped_logits_add_probabilities_and_never_predict_unmapped_classes():
    mapping = class_mapping(["Car", "automobile", "tree", "boat"], ["sky", "car", "vegetation"])
    assert mapping.pairs == ((0, 1), (1, 1), (2, 2)) and mapping.unmatched_data == ["sky"]
    logits = torch.randn(2, 4, 5, 6)
    out = mapping.wrap(nn.Identity())(logits)
    assert out.shape == (2, 3, 5, 6)
    probs = out.softmax(1)
    renormalised = logits[:, :3].softmax(1)  # boat (index 3) is left out
    assert torch.allclose(probs[:, 1], renormalised[:, 0] + renormalised[:, 1], atol=1e-5)
    assert torch.allclose(probs[:, 2], renormalised[:, 2], atol=1e-5) and float(probs[:, 0].max()) < 1e-6


def test_mapped_targets_ignore_data_classes_without_a_model_class(folder_root):
    from segbench.data.datasets import open_dataset

    ds = open_dataset(folder_root, "val")
    mapping = class_mapping(["dog", "cat"], ds.class_set.names)
    view = mapping.targets(ds)
    mask, mapped = ds[0]["mask"], view[0]["mask"]
    assert len(view) == len(ds) and view.class_set is ds.class_set
    assert np.array_equal(mapped[mask == 0], np.full((mask == 0).sum(), IGNORE_INDEX))
    assert np.array_equal(mapped[mask != 0], mask[mask != 0])


def test_class_map_file(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("Truck: car\nbus: Car\n2: 0\nrider: null\n")
    mapping = read_class_map(path, ["truck", "bus", "sky", "rider"], ["sky", "car"])
    assert mapping.pairs == ((0, 1), (1, 1), (2, 0)) and mapping.how == str(path)
    assert mapping.describe().startswith(f"classes from {path}: truck -> car, bus -> car, sky -> sky")
    path.write_text("plane: car\n")
    with pytest.raises(UserError, match="'plane' is not a class of the model"):
        read_class_map(path, ["truck"], ["car"])
    path.write_text("truck: [car\n")
    with pytest.raises(UserError, match="not valid YAML"):
        read_class_map(path, ["truck"], ["car"])
    with pytest.raises(UserError, match="no such class map"):
        read_class_map(tmp_path / "gone.yaml", ["truck"], ["car"])


class ColourNet(nn.Module):
    """Logits = 10 x (G, R, B) of the input: on the shapes data (mean 0, std 1) the colour decides the class."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * x[:, [1, 0, 2]]


@pytest.fixture
def colour_model(tmp_path):
    path = tmp_path / "colours.pt"
    meta = {"classes": ["Green", "Red", "Sky"], "mean": [0, 0, 0], "std": [1, 1, 1]}
    torch.jit.save(torch.jit.script(ColourNet()), str(path), _extra_files={"segbench.json": json.dumps(meta)})
    return path


def _evaluate(capsys, *argv):
    rc = main(["evaluate", *map(str, argv), "--quiet", "--json"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_evaluate_maps_by_name_or_class_map(colour_model, shapes_root, tmp_path, capsys):
    rc, out, err = _evaluate(capsys, colour_model, "--data", shapes_root)
    assert rc == 0, err
    res = json.loads(out)
    assert res["miou"] == 1.0 and res["iou"]["background"] is None  # no model class: ignored
    assert res["class_mapping"].startswith("classes matched by class name: Green -> green, Red -> red")
    assert "model classes not mapped (left out): Sky" in err
    cmap = tmp_path / "map.yaml"
    cmap.write_text("Sky: background\nRed: red\nGreen: green\n")
    rc, out, err = _evaluate(capsys, colour_model, "--data", shapes_root, "--class-map", cmap)
    res = json.loads(out)
    assert rc == 0 and res["miou"] == 1.0 and res["iou"]["background"] == 1.0


def test_evaluate_without_any_mapping_is_one_line(colour_model, shapes_root, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    rc, _, err = _evaluate(capsys, colour_model, "--data", shapes_root, "--classes", names)
    assert rc == 2 and "no class name matches; map them with --class-map FILE" in err and len(err.splitlines()) == 1
    rc, _, err = _evaluate(capsys, colour_model, "--data", shapes_root, "--class-map", tmp_path / "gone.yaml")
    assert rc == 2 and "gone.yaml: no such class map" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("imagecorruptions") is None,
                    reason="imagecorruptions not installed (pip install 'segbench[robustness]')")  # fmt: skip
def test_corruption_sweep_scores_an_external_model_through_its_class_mapping(colour_model, shapes_root):
    ds = open_dataset(shapes_root, "val")
    runners = corruption_runners([str(colour_model), "fast_scnn"], "none", list(ds.class_set.names))
    assert list(runners) == ["colours.pt"]  # fast_scnn predicts Cityscapes' 19 classes: no name maps onto shapes'
    runner = runners["colours.pt"]
    assert runner.num_classes == 3 and runner.mapping is not None
    plan = CorruptionPlan(("brightness",), (1,), max_images=2)
    table = corruption_sweep(runners, ds, len(ds), plan, progress=False)
    t = table["models"]["colours.pt"]
    assert table["image_indices"] == [0, len(ds) - 1] and table["num_images"] == 2
    assert t["clean_miou"] == 1.0  # background has no model class: ignored, as in evaluate
    assert 0.0 <= t["miou"]["brightness"][0] <= 1.0
