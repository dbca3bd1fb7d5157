"""Datasets (CamVid, generic folder, unlabelled images), robust image and mask reading, and the joint
training transform."""

import numpy as np
import pytest
import torch
from conftest import H, W, make_camvid, make_folder_dataset
from PIL import Image

from segbench.classes import CAMVID, IGNORE_INDEX
from segbench.data.datasets import camvid, open_dataset
from segbench.data.io import read_image, read_mask
from segbench.data.transforms import preprocess, to_tensor_pair, train_transform
from segbench.preprocessing import Preprocessing
from segbench.errors import UserError

# --- CamVid ---------------------------------------------------------------------------------------


def _check_camvid_item(item, label_path):
    raw = np.array(Image.open(label_path))
    assert item["image"].shape == (H, W, 3) and item["image"].dtype == np.uint8
    assert item["mask"].shape == (H, W) and item["mask"].dtype == np.int64
    assert (item["mask"][raw == 11] == IGNORE_INDEX).all()  # void 11 -> 255
    keep = raw != 11
    np.testing.assert_array_equal(item["mask"][keep], raw[keep])
    assert set(np.unique(item["mask"])) == set(range(11)) | {IGNORE_INDEX}


def test_camvid_from_txt_listing(camvid_root):
    ds = open_dataset(camvid_root, "train")
    assert len(ds) == 4 and ds.labelled and ds.class_set == CAMVID
    # SegNet's absolute paths (/SegNet/CamVid/train/x.png) are mapped into the root
    img_path, mask_path = ds.pairs[1]
    assert img_path == camvid_root / "train" / "train_001.png"
    assert mask_path == camvid_root / "trainannot" / "train_001.png"
    item = ds[1]
    assert item["name"] == "train_001"
    _check_camvid_item(item, mask_path)
    assert len(open_dataset(camvid_root, "val")) == 2


def test_camvid_from_folder_pairing(tmp_path):
    root = make_camvid(tmp_path / "cv", n_train=3, n_val=1, listing=False)
    assert not (root / "train.txt").exists()
    ds = open_dataset(root, "train")
    assert [p.name for p, _ in ds.pairs] == ["train_000.png", "train_001.png", "train_002.png"]
    assert all(m == root / "trainannot" / p.name for p, m in ds.pairs)
    _check_camvid_item(ds.load(2), ds.pairs[2][1])


def test_camvid_bad_listing_line(tmp_path):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=1)
    (root / "train.txt").write_text("only_one_column.png\n")
    with pytest.raises(UserError, match=r"train.txt:1: expected 'image label'"):
        open_dataset(root, "train")


def test_camvid_missing_split(camvid_root):
    with pytest.raises(UserError, match="no such file or folder"):
        open_dataset(camvid_root / "nope", "val")
    with pytest.raises(UserError, match="test"):
        from segbench.data.datasets import camvid

        camvid(camvid_root, "test")


# --- generic folder and unlabelled images ---------------------------------------------------------


def test_folder_dataset_with_classes_yaml(folder_root):
    ds = open_dataset(folder_root, "val")
    assert len(ds) == 3 and ds.labelled
    assert ds.class_set.names == ("background", "cat", "dog")
    assert ds.class_set.palette == ((0, 0, 0), (255, 0, 0), (0, 255, 0))
    item = ds[0]
    raw = np.array(Image.open(folder_root / "masks" / "img0.png"))
    np.testing.assert_array_equal(item["mask"], raw.astype(np.int64))
    assert (item["mask"][:4] == IGNORE_INDEX).all()
    assert item["image"].shape == (H, W, 3)


def test_folder_dataset_split_subfolders_and_void_ids(tmp_path):
    make_folder_dataset(tmp_path / "train", n=2)
    make_folder_dataset(tmp_path / "val", n=1, seed=1)
    (tmp_path / "train" / "classes.yaml").unlink()
    (tmp_path / "val" / "classes.yaml").unlink()
    (tmp_path / "classes.yaml").write_text("names: [a, b, c]\nvoid: [2, 255]\n")  # at the root, void 2
    train = open_dataset(tmp_path, "train")
    val = open_dataset(tmp_path, "val")
    assert len(train) == 2 and len(val) == 1
    raw = np.array(Image.open(tmp_path / "val" / "masks" / "img0.png"))
    mask = val[0]["mask"]
    assert (mask[raw == 2] == IGNORE_INDEX).all()
    assert set(np.unique(mask)) <= {0, 1, IGNORE_INDEX}


def test_folder_dataset_errors(tmp_path):
    root = make_folder_dataset(tmp_path / "f", n=2)
    (root / "masks" / "img1.png").unlink()
    ds = open_dataset(root)  # the image without a mask is skipped by batch jobs, not fatal to the whole set
    assert len(ds) == 2 and "error" not in ds[0]
    assert "img1.png: no mask with stem 'img1'" in ds[1]["error"]
    with pytest.raises(UserError, match="img1.png: no mask with stem 'img1'"):
        ds.load(1)
    (root / "classes.yaml").write_text("names: [a]\ncolours: [[1, 2, 3]]\n")
    with pytest.raises(UserError, match="unknown keys \\['colours'\\]"):
        open_dataset(root)
    (root / "classes.yaml").unlink()
    with pytest.raises(UserError, match="missing classes.yaml"):
        open_dataset(root)


def test_unlabelled_images_folder(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((20, 30, 3), i * 50, np.uint8)).save(tmp_path / f"p{i}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = open_dataset(tmp_path)
    assert len(ds) == 2 and not ds.labelled and ds.class_set is None
    item = ds[1]
    assert item["mask"] is None and item["name"] == "p1" and item["image"].shape == (20, 30, 3)
    # a single file works too
    assert len(open_dataset(tmp_path / "p0.jpg")) == 1


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no images found"):
        open_dataset(tmp_path)


# --- reading images -------------------------------------------------------------------------------


def _save(tmp_path, img: Image.Image, name: str):
    path = tmp_path / name
    img.save(path)
    return path


@pytest.mark.parametrize(
    ("mode", "name", "make", "expected_first_pixel"),
    [
        ("L", "l.png", lambda: Image.new("L", (7, 5), 100), (100, 100, 100)),
        ("RGBA", "rgba.png", lambda: Image.new("RGBA", (7, 5), (10, 20, 30, 255)), (10, 20, 30)),
        ("P", "p.png", lambda: _palette_image(), (200, 10, 20)),
        ("I;16", "i16.png", lambda: Image.fromarray(np.full((5, 7), 65535, np.uint16)), (255, 255, 255)),
        ("CMYK", "cmyk.tif", lambda: Image.new("CMYK", (7, 5), (0, 0, 0, 0)), (255, 255, 255)),
    ],
)
def test_image_modes_come_back_rgb_uint8(tmp_path, mode, name, make, expected_first_pixel):
    img = make()
    assert img.mode == mode
    path = _save(tmp_path, img, name)
    arr = read_image(path)
    assert arr.shape == (5, 7, 3) and arr.dtype == np.uint8
    assert tuple(arr[0, 0]) == expected_first_pixel


def _palette_image():
    img = Image.new("P", (7, 5), 1)
    img.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    return img


def test_16bit_image_is_scaled_to_8_bits(tmp_path):
    arr16 = np.array([[0, 32768, 65535]], np.uint16)
    path = _save(tmp_path, Image.fromarray(arr16), "ramp.png")
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 128, 255])


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (64, 48), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 8, 8))  # a white block in the top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    arr = read_image(path)
    assert arr.shape == (64, 48, 3)  # transposed: H and W swapped
    assert arr[:8, -8:].mean() > 200 and arr[:8, :8].mean() < 50  # top-left moved to the top-right


def test_undecodable_image_item_and_load(tmp_path):
    root = make_camvid(tmp_path / "cv", n_train=2, n_val=1)
    (root / "train" / "train_000.png").write_bytes(b"this is not a png")
    ds = open_dataset(root, "train")
    item = ds[0]
    assert "error" in item and "image" not in item
    assert item["name"] == "train_000" and item["path"].endswith("train_000.png")
    assert "cannot decode image" in item["error"]
    assert "error" not in ds[1]
    with pytest.raises(UserError, match="train_000.png: cannot decode image"):
        ds.load(0)
    with pytest.raises(UserError, match="no such file"):
        read_image(tmp_path / "absent.png")


def test_mask_values_outside_the_classes(tmp_path):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=1)
    label_path = root / "trainannot" / "train_000.png"
    label = np.array(Image.open(label_path))
    label[0, :3] = [12, 40, 12]
    Image.fromarray(label).save(label_path)
    ds = open_dataset(root, "train")
    assert "label values 12, 40 are outside the 11 classes" in ds[0]["error"]
    with pytest.raises(UserError, match="label values 12, 40"):
        ds.load(0)


def test_rgb_mask_is_rejected(tmp_path):
    path = tmp_path / "rgb_mask.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(UserError, match="single-channel"):
        read_mask(path, 3)


def test_image_mask_size_mismatch_names_both_sizes(tmp_path):
    root = make_folder_dataset(tmp_path / "f", n=1)
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "masks" / "img0.png")
    ds = open_dataset(root)
    err = ds[0]["error"]
    assert "32x24" in err and f"{W}x{H}" in err and "img0" in err


# --- transforms -----------------------------------------------------------------------------------

STRIPE_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.int64)


def _class_coded_pair():
    """An H x W image whose colour encodes the class, asymmetric in x and y so a flip or a shift of only
    one of image/mask would be seen."""
    yy, xx = np.mgrid[:H, :W]
    mask = np.where(xx < 20, 0, np.where(yy < 30, 1, 2)).astype(np.int64)
    mask[40:, :6] = IGNORE_INDEX  # some void pixels too
    image = STRIPE_COLOURS[np.where(mask == IGNORE_INDEX, 0, mask)].astype(np.uint8)
    return image, mask


def test_train_transform_keeps_image_and_mask_aligned():
    image, mask = _class_coded_pair()
    img_t, mask_t = to_tensor_pair(image, mask)
    assert img_t.shape == (3, H, W) and mask_t.dtype == torch.uint8
    aug = train_transform((40, 40), (0.6, 1.6), hflip=True, base_short_side=H)
    torch.manual_seed(0)
    flipped_seen = padded_seen = False
    for _ in range(30):
        out_img, out_mask = aug(img_t, mask_t)
        assert out_img.shape == (3, 40, 40) and out_mask.shape == (40, 40)
        img = out_img.permute(1, 2, 0).numpy().astype(np.int64)
        m = out_mask.numpy().astype(np.int64)
        dist = np.abs(img[:, :, None, :] - STRIPE_COLOURS[None, None]).max(-1)  # (h, w, 3 classes)
        pure = dist.min(-1) <= 10  # pixels whose colour is (nearly) one class's: away from blurred edges
        labelled = m != IGNORE_INDEX
        check = pure & labelled
        assert check.sum() > 0.5 * labelled.sum()
        np.testing.assert_array_equal(m[check], dist.argmin(-1)[check])
        # pixels labelled as a class are never black (padding) in the image
        assert (img[labelled].sum(-1) > 0).all()
        padded_seen |= bool((m == IGNORE_INDEX).sum() > 0 and (img.sum(-1) == 0).any())
        # class 0 (red) is on the left in the source: after a flip it is seen on the right of class 1/2
        cols = [np.where(m == c)[1].mean() for c in (0, 1) if (m == c).any()]
        flipped_seen |= len(cols) == 2 and cols[0] > cols[1]
    assert flipped_seen, "hflip never happened in 30 draws"
    assert padded_seen


def test_train_transform_pads_mask_with_ignore_index():
    image, mask = _class_coded_pair()
    aug = train_transform((80, 100), (1.0, 1.0), hflip=False, base_short_side=H)
    out_img, out_mask = aug(*to_tensor_pair(image, mask))
    assert out_img.shape == (3, 80, 100) and out_mask.shape == (80, 100)
    m = out_mask.numpy()
    inside = m != IGNORE_INDEX
    void_in_source = int((mask == IGNORE_INDEX).sum())
    assert (m == IGNORE_INDEX).sum() == 80 * 100 - H * W + void_in_source
    padding = out_img.numpy().sum(0) == 0
    assert (padding.sum()) >= 80 * 100 - H * W
    assert not (padding & inside).any()
    assert sorted(np.unique(m[inside])) == [0, 1, 2]


def test_normalize_and_preprocess():
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 255
    x = preprocess(img, Preprocessing((0.5, 0.5, 0.5), (0.5, 0.25, 0.5)))
    assert x.shape == (1, 3, 4, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([1.0, -2.0, -1.0]))
    batch = torch.full((2, 3, 1, 1), 51, dtype=torch.uint8)
    torch.testing.assert_close(Preprocessing((0, 0, 0), (1, 1, 1)).normalize(batch), torch.full((2, 3, 1, 1), 0.2))


# --- named and group-disjoint splits ----------------------------------------------------------------


def _camvid_with_drives(tmp_path):
    """A tiny CamVid whose files carry drive prefixes as CamVid's do: train 0001TP x1, 0006R0 x2, 0016E5 x2;
    val 0016E5 x2."""
    root = make_camvid(tmp_path / "cv", n_train=5, n_val=2, listing=False)
    names = {"train": ["0001TP_000", "0006R0_001", "0006R0_002", "0016E5_003", "0016E5_004"],
             "val": ["0016E5_100", "0016E5_101"]}  # fmt: skip
    for split, stems in names.items():
        for i, stem in enumerate(stems):
            for folder in (split, f"{split}annot"):
                (root / folder / f"{split}_{i:03d}.png").rename(root / folder / f"{stem}.png")
    return root


def _stems(ds):
    return sorted(p.stem for p, _ in ds.pairs)


def test_camvid_named_splits_hold_out_a_whole_drive(tmp_path):
    root = _camvid_with_drives(tmp_path)
    seq_train, seq_val = open_dataset(root, "seq_train"), open_dataset(root, "seq_val")
    assert _stems(seq_val) == ["0006R0_001", "0006R0_002"]
    assert _stems(seq_train) == ["0001TP_000", "0016E5_003", "0016E5_004", "0016E5_100", "0016E5_101"]
    drives = {s.split("_")[0] for s in _stems(seq_train)}
    assert "0006R0" not in drives  # no training frame shares the validation drive
    assert _stems(open_dataset(root, "trainval")) == sorted(_stems(seq_train) + _stems(seq_val))
    assert _stems(open_dataset(root, "train+val")) == _stems(open_dataset(root, "trainval"))
    for pair in seq_train.pairs + seq_val.pairs:  # labels still pair with their images
        assert pair[1].name == pair[0].name and pair[1].parent.name.endswith("annot")
    with pytest.raises(UserError, match="no CamVid split 'nope'"):
        camvid(root, "train+nope")


def test_select_groups_by_pattern(tmp_path):
    from segbench.data.datasets import file_group, select_groups

    root = _camvid_with_drives(tmp_path)
    ds = open_dataset(root, "train")
    kept = select_groups(ds, r"^([^_]+)_", ["0001TP", "0016E5"], keep=True)
    dropped = select_groups(ds, r"^([^_]+)_", ["0001TP", "0016E5"], keep=False)
    assert _stems(kept) == ["0001TP_000", "0016E5_003", "0016E5_004"]
    assert _stems(dropped) == ["0006R0_001", "0006R0_002"]
    assert file_group(root / "x" / "0006R0_001.png", r"R\d") == "R0"  # no group: the whole match
    with pytest.raises(UserError, match="does not match this file name"):
        select_groups(ds, r"^seq(\d+)", ["1"], keep=True)
    with pytest.raises(UserError, match="not a regular expression"):
        select_groups(ds, r"^(", ["1"], keep=True)
