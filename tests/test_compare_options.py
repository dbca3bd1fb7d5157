"""``compare()`` takes its settings as a :class:`CompareOptions` or by name; a wrong name fails at once."""

import pytest

from segbench.compare import CompareOptions, compare, plan


def test_unknown_setting_names_the_fields(tmp_path):
    with pytest.raises(TypeError, match=r"\['devcie'\].*device"):
        compare(["fast_scnn"], tmp_path, tmp_path / "out", devcie="cpu")


def test_plan_fixes_backends_grid_and_input_size(camvid_root):
    opts = CompareOptions(max_images=2, grid_images=1, backends=("eager", "eager"))
    p = plan(camvid_root, opts)
    assert p.backends == ["eager"] and not p.several
    assert p.n_images == 2 and len(p.grid_names) == 1
    assert tuple(p.input_size) == p.dataset[0]["image"].shape[:2]
    assert p.class_names == list(p.dataset.class_set.names)


def test_plan_keeps_a_given_input_size(camvid_root):
    p = plan(camvid_root, CompareOptions(input_size=(64, 96), backends=("eager", "bf16")))
    assert p.input_size == (64, 96) and p.several and p.backends == ["eager", "bf16"]
