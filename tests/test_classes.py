"""segbench.classes: the palette rule and the one colouriser (label map -> RGB) of the report and predict."""

import numpy as np

from segbench.classes import CAMVID, IGNORE_INDEX, colorize, default_palette, palette_array
from segbench.data.io import label_image


def test_colorize_ignore_black():
    lab = np.array([[0, 1], [255, 7]])
    rgb = colorize(lab, [(10, 20, 30), (40, 50, 60)])
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 1]) == (40, 50, 60)
    assert not rgb[1].any()  # 255 and out-of-range values are black


def test_colorize_num_classes_and_negative_values_are_void():
    lab = np.array([[0, 1, 2, -1]])
    rgb = colorize(lab, [(10, 20, 30), (40, 50, 60), (70, 80, 90)], num_classes=2)
    assert [tuple(c) for c in rgb[0]] == [(10, 20, 30), (40, 50, 60), (0, 0, 0), (0, 0, 0)]


def test_default_palette_is_deterministic_spread_and_never_black():
    colours = default_palette(40)
    assert colours[:4] == [(242, 93, 61), (12, 38, 242), (163, 242, 109), (178, 45, 138)]
    assert default_palette(3) == colours[:3]  # colour i does not depend on the number of classes
    assert len(set(colours)) == 40
    assert all(max(c) > 0 for c in colours)  # black is void


def test_palette_array_takes_the_given_colours_first():
    table = palette_array([(1, 2, 3, 255), (300, -5, 7)], 4)
    assert table.dtype == np.uint8 and table.shape == (4, 3)
    assert [tuple(int(v) for v in c) for c in table] == [(1, 2, 3), (255, 0, 7)] + default_palette(4)[2:]
    assert palette_array(None, 0).shape == (0, 3)
    assert palette_array(list(CAMVID.palette), 2).shape == (len(CAMVID.palette), 3)


def test_label_image_keeps_indices_and_shows_the_colorize_colours():
    mask = np.array([[0, 1, 10], [IGNORE_INDEX, 12, 3]], dtype=np.int64)
    img = label_image(mask, CAMVID.palette)
    assert img.mode == "P"
    np.testing.assert_array_equal(np.array(img), mask)
    assert img.getpalette()[:33] == [v for c in CAMVID.palette for v in c]
    np.testing.assert_array_equal(np.array(img.convert("RGB")), colorize(mask, CAMVID.palette))
