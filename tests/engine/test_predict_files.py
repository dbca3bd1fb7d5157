"""The output files of ``segbench predict`` and the class fractions written into ``classes.json``."""

from pathlib import Path

import numpy as np

from segbench.engine.predict import class_fractions, output_paths


def test_output_paths_per_stem_with_and_without_confidence():
    out = Path("o")
    plain = output_paths(out, ["a", "b"], confidence=False)
    assert [sorted(p) for p in plain] == [["classes.json", "label.png", "overlay.png"]] * 2
    assert plain[1]["label.png"] == out / "b_label.png"
    assert output_paths(out, ["a"], confidence=True)[0]["confidence.png"] == out / "a_confidence.png"


def test_class_fractions_count_every_class():
    mask = np.array([[0, 0, 2], [2, 2, 2]])
    counts, fractions = class_fractions(mask, ["x", "y", "z"])
    assert counts.tolist() == [2, 0, 4]
    assert fractions == {"x": 2 / 6, "y": 0.0, "z": 4 / 6}
