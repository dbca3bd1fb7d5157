"""Each published layout read from a tiny folder with the real file names: detection, splits, the class
indices of the label maps against the dataset's own definition, void, and one-line errors."""

import sys

import numpy as np
import pytest
from dataset_layouts import CITYSCAPES_IDS, make_ade20k, make_cityscapes, make_voc
from PIL import Image

from segbench.classes import ADE20K, CITYSCAPES, IGNORE_INDEX, VOC
from segbench.data.datasets import describe_dataset, open_dataset, supported_datasets
from segbench.errors import UserError

needs_cityscapesscripts = pytest.mark.skipif(
    __import__("importlib").util.find_spec("cityscapesscripts") is None,
    reason="cityscapesscripts not installed (pip install 'segbench[cityscapes]')",
)


def _raw(path):
    return np.asarray(Image.open(path)).astype(np.int64)


# --- Cityscapes ------------------------------------------------------------------------------------


@needs_cityscapesscripts
def test_cityscapes_label_ids_become_train_ids(tmp_path):
    root = make_cityscapes(tmp_path / "cityscapes")
    ds = open_dataset(root, "val")
    assert ds.layout == "cityscapes" and ds.class_set == CITYSCAPES and len(ds) == 3 and ds.labelled
    img, mask_path = ds.pairs[0]
    assert img.name == "frankfurt_000000_000019_leftImg8bit.png"
    assert mask_path.name == "frankfurt_000000_000019_gtFine_labelIds.png"
    item = ds.load(0)
    raw = _raw(mask_path)
    expected = np.vectorize(CITYSCAPES_IDS.get)(raw)
    np.testing.assert_array_equal(item["mask"], expected)
    assert {0, 1, 2, 8, 10, 11, 13, 18, IGNORE_INDEX} == set(np.unique(item["mask"]).tolist())
    assert [p.parent.name for p, _ in ds.pairs] == ["frankfurt", "frankfurt", "munster"]  # sorted by city


def test_cityscapes_train_ids_files_used_when_present(tmp_path, monkeypatch):
    root = make_cityscapes(tmp_path / "cs", train_ids=True)
    gt = root / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000019_gtFine_labelTrainIds.png"
    Image.fromarray(np.full(_raw(gt).shape, 5, np.uint8)).save(gt)  # differs from its labelIds on purpose
    monkeypatch.setitem(sys.modules, "cityscapesscripts.helpers.labels", None)  # not needed for train ids
    ds = open_dataset(root, "val")
    assert ds.pairs[0][1] == gt and ds.label_table is None
    assert (ds.load(0)["mask"] == 5).all()


def test_cityscapes_test_split_is_unlabelled_and_described(tmp_path):
    root = make_cityscapes(tmp_path / "cs", train_ids=True)
    ds = open_dataset(root, "test")
    assert len(ds) == 1 and not ds.labelled and ds.load(0)["mask"] is None
    line = describe_dataset(root)
    assert "\n" not in line and "cityscapes" in line
    assert "train 2 images" in line and "val 3 images" in line and "test 1 image (unlabelled)" in line
    assert "19 classes (road, sidewalk" in line and "labelTrainIds" in line


def test_cityscapes_label_ids_without_the_package_one_line(tmp_path, monkeypatch):
    root = make_cityscapes(tmp_path / "cs")
    monkeypatch.setitem(sys.modules, "cityscapesscripts.helpers.labels", None)
    with pytest.raises(UserError, match=r"cityscapesscripts.*pip install 'segbench\[cityscapes\]'"):
        open_dataset(root, "val")


@needs_cityscapesscripts
def test_cityscapes_value_outside_the_label_table(tmp_path):
    root = make_cityscapes(tmp_path / "cs", frames={"val": 1})
    mask = next((root / "gtFine" / "val").rglob("*_labelIds.png"))
    Image.fromarray(np.full((12, 16), 200, np.uint8)).save(mask)
    item = open_dataset(root, "val")[0]
    assert "label values 200 are not in the dataset's label table" in item["error"] and mask.name in item["error"]


def test_cityscapes_missing_split_names_the_found_ones(tmp_path):
    root = make_cityscapes(tmp_path / "cs", frames={"val": 1})
    with pytest.raises(UserError, match=r"no split 'train'.*splits found: val"):
        open_dataset(root, "train")


# --- PASCAL VOC 2012 and SBD -------------------------------------------------------------------------


def test_voc_palette_pngs_give_class_indices_and_void_border(tmp_path):
    top = make_voc(tmp_path / "dl")  # the folder above VOCdevkit/
    ds = open_dataset(top, "val")
    assert ds.layout == "voc" and ds.class_set == VOC and len(ds) == 3
    img, mask_path = ds.pairs[1]
    assert img.parent.name == "JPEGImages" and img.name == "2007_000042.jpg"
    assert mask_path.parent.name == "SegmentationClass" and Image.open(mask_path).mode == "P"
    mask = ds.load(1)["mask"]
    np.testing.assert_array_equal(mask, _raw(mask_path))  # the palette indices, not the colours
    assert (mask[0] == IGNORE_INDEX).all() and set(np.unique(mask[1:]).tolist()) <= set(range(21))
    assert len(open_dataset(top / "VOCdevkit" / "VOC2012", "trainval")) == 5


def test_voc_test_listing_without_masks_is_unlabelled(tmp_path):
    ds = open_dataset(make_voc(tmp_path / "v"), "test")
    assert len(ds) == 1 and not ds.labelled


def test_voc_aug_split_and_deeplab_listing(tmp_path):
    top = make_voc(tmp_path / "dl", aug=True)
    ds = open_dataset(top, "train_aug")
    assert ds.layout == "voc_aug" and len(ds) == 4
    assert [p.stem for p, _ in ds.pairs] == ["2008_000002", "2008_000003", "2007_000032", "2007_000039"]
    assert all(m.parent.name == "SegmentationClassAug" for _, m in ds.pairs)
    np.testing.assert_array_equal(ds.load(0)["mask"], _raw(ds.pairs[0][1]))
    assert open_dataset(top, "val").layout == "voc"  # both mask folders: the standard split stays VOC's
    forced = open_dataset(top, "val", dataset="voc_aug")
    assert forced.layout == "voc_aug" and forced.pairs[0][1].parent.name == "SegmentationClassAug"


# --- ADE20K -----------------------------------------------------------------------------------------


def test_ade20k_zero_is_void_and_labels_shift_by_one(tmp_path):
    top = make_ade20k(tmp_path / "ade")
    ds = open_dataset(top, "val")  # "val" stands for "validation"
    assert ds.layout == "ade20k" and ds.class_set == ADE20K and len(ds) == 2
    assert ds.pairs[0][0].name == "ADE_val_00000001.jpg"
    raw = _raw(ds.pairs[0][1])
    mask = ds.load(0)["mask"]
    assert (mask[raw == 0] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(mask[raw > 0], raw[raw > 0] - 1)
    assert ADE20K.names[mask[raw == 150][0]] == "flag" and ADE20K.names[mask[raw == 1][0]] == "wall"
    assert len(open_dataset(top / "ADEChallengeData2016", "training")) == 2


def test_ade20k_value_above_150_is_an_error(tmp_path):
    top = make_ade20k(tmp_path / "ade", n={"validation": 1})
    mask = next((top / "ADEChallengeData2016" / "annotations" / "validation").iterdir())
    Image.fromarray(np.full((12, 16), 151, np.uint8)).save(mask)
    assert "label values 151" in open_dataset(top, "validation")[0]["error"]


# --- detection, forcing, description -----------------------------------------------------------------


def test_forced_layout_on_the_wrong_folder_names_what_is_missing(tmp_path):
    top = make_ade20k(tmp_path / "ade")
    with pytest.raises(UserError, match=r"no split 'val'.*ImageSets/Segmentation/val.txt"):
        open_dataset(top, "val", dataset="voc")
    with pytest.raises(UserError, match="--dataset 'kitti': expected one of cityscapes, ade20k, voc"):
        open_dataset(top, "val", dataset="kitti")
    ds = open_dataset(top / "ADEChallengeData2016" / "images" / "validation", "val", dataset="images")
    assert len(ds) == 2 and not ds.labelled


def test_describe_every_layout_in_one_line(tmp_path, camvid_root, folder_root):
    lines = {
        "voc": describe_dataset(make_voc(tmp_path / "v", aug=True)),
        "ade20k": describe_dataset(make_ade20k(tmp_path / "a")),
        "camvid": describe_dataset(camvid_root),
        "folder": describe_dataset(folder_root),
    }
    for name, line in lines.items():
        assert "\n" not in line and f": {name} (" in line, line
    assert "train 2 images" in lines["voc"] and "val 3 images" in lines["voc"] and "21 classes" in lines["voc"]
    assert "training 2 images, validation 2 images" in lines["ade20k"] and "150 classes (wall" in lines["ade20k"]
    assert "void [11, 255]" in lines["camvid"]
    assert "train_aug 4 images" in describe_dataset(tmp_path / "v", "voc_aug")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"not a dataset and no image files \(looked for leftImg8bit/ \(cityscapes\)"):
        describe_dataset(empty)


def test_supported_datasets_lists_every_layout():
    names = [row["name"] for row in supported_datasets()]
    assert names == ["cityscapes", "ade20k", "voc", "voc_aug", "camvid", "folder", "images"]
