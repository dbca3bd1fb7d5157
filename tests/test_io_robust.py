"""Robust image and label reading: every mode to RGB, tiny and truncated files, and property-based (hypothesis)
fuzzing of the loaders: whatever the bytes, a loader returns a well-formed array or raises UserError."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segbench.classes import ClassSet
from segbench.data.datasets import SegmentationDataset
from segbench.data.io import read_image, read_mask
from segbench.errors import UserError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# --- modes ----------------------------------------------------------------------------------------


def test_cmyk_jpeg_comes_back_rgb(tmp_path):
    img = Image.new("CMYK", (9, 6), (0, 255, 255, 0))  # pure red in CMYK
    path = _write(tmp_path, "cmyk.jpg", _encode(img, "JPEG", quality=100))
    assert Image.open(path).mode == "CMYK"
    arr = read_image(path)
    assert arr.shape == (6, 9, 3) and arr.dtype == np.uint8
    assert arr[..., 0].min() > 240 and arr[..., 1:].max() < 15


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 100, 255]], np.int32), [0, 100, 255]),  # 8-bit values in a 32-bit image
        (np.array([[0, 257 * 100, 65535]], np.int32), [0, 100, 255]),  # 16-bit values
        (np.array([[0, 500_000, 1_000_000]], np.int32), [0, 128, 255]),  # wider: scaled by the maximum
        (np.array([[-5, 7, 200]], np.int32), [0, 7, 200]),  # negative values clipped to 0
    ],
)
def test_32bit_integer_images_are_scaled_by_their_range(tmp_path, array, expected):
    path = _write(tmp_path, "i.tif", _encode(Image.fromarray(array), "TIFF"))
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(read_image(path)[0, :, 1], expected)


def test_16bit_big_endian_and_float_images(tmp_path):
    img = Image.frombytes("I;16B", (3, 1), np.array([0, 32896, 65535], ">u2").tobytes())
    path = _write(tmp_path, "be.tif", _encode(img, "TIFF"))
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_array_equal(read_image(path)[0, :, 2], [0, 128, 255])
    unit = _write(tmp_path, "unit.tif", _encode(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)), "TIFF"))
    np.testing.assert_array_equal(read_image(unit)[0, :, 0], [0, 128, 255])  # 0..1 floats
    levels = _write(
        tmp_path, "lv.tif", _encode(Image.fromarray(np.array([[np.nan, 100.0, 900.0]], np.float32)), "TIFF")
    )
    np.testing.assert_array_equal(read_image(levels)[0, :, 0], [0, 100, 255])  # 0..255 floats, NaN -> 0


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F"])
@pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 1)])
def test_tiny_images_of_every_mode(tmp_path, mode, size):
    img = Image.new(mode, size)
    fmt = "TIFF" if mode in ("CMYK", "YCbCr", "F", "I") else "PNG"
    if mode == "YCbCr":
        fmt = "JPEG"
    path = _write(tmp_path, f"x.{fmt.lower()}", _encode(img, fmt))
    arr = read_image(path)
    assert arr.shape == (size[1], size[0], 3) and arr.dtype == np.uint8


def test_unconvertible_mode_is_a_user_error_naming_the_file(tmp_path, monkeypatch):
    path = _write(tmp_path, "odd.png", _encode(Image.new("L", (2, 2)), "PNG"))
    real_open = Image.open

    def open_as_la(p, *a, **k):  # Pillow cannot convert mode "La" (premultiplied) to RGB
        return real_open(p, *a, **k).convert("LA").convert("La")

    monkeypatch.setattr(Image, "open", open_as_la)
    with pytest.raises(UserError, match=r"odd\.png: image mode La cannot be converted to RGB"):
        read_image(path)


def test_truncated_and_empty_files_are_reported(tmp_path):
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)), "JPEG")
    for name, payload in (("cut.jpg", data[: len(data) // 2]), ("empty.png", b""), ("text.png", b"hello")):
        with pytest.raises(UserError, match=rf"{name}: cannot decode image"):
            read_image(_write(tmp_path, name, payload))


# --- property-based fuzzing -----------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes_never_escape_as_another_exception(tmp_path, data):
    path = _write(tmp_path, "fuzz.bin", data)
    try:
        arr = read_image(path)
    except UserError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8


@FUZZ
@given(
    sample=st.deferred(lambda: encoded_images()),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_fuzz_corrupted_bytes_of_valid_images(tmp_path, sample, edits):
    fmt, _, _, data = sample
    data = bytearray(data)
    for where, value in edits:
        data[min(int(where * len(data)), len(data) - 1)] = value
    path = _write(tmp_path, f"bad.{fmt.lower()}", bytes(data))
    try:
        arr = read_image(path)
    except UserError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8


_FORMATS = {
    "PNG": ("L", "LA", "P", "RGB", "RGBA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "TIFF": ("L", "RGB", "RGBA", "CMYK", "I", "F"),
    "BMP": ("L", "P", "RGB"),
    "WEBP": ("RGB", "RGBA"),
}


@st.composite
def encoded_images(draw):
    fmt = draw(st.sampled_from(sorted(_FORMATS)))
    mode = draw(st.sampled_from(_FORMATS[fmt]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if mode in ("I;16",):
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "I":
        img = Image.fromarray(rng.integers(0, 2**20, (h, w)).astype(np.int32))
    elif mode == "F":
        img = Image.fromarray(rng.random((h, w), dtype=np.float32) * draw(st.sampled_from([1.0, 255.0, 1000.0])))
    else:
        bands = len(Image.new(mode, (1, 1)).getbands())
        arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        img = Image.frombytes(mode, (w, h), arr.tobytes()) if mode != "P" else Image.fromarray(arr[..., 0], "P")
    return fmt, mode, (h, w), _encode(img, fmt)


@FUZZ
@given(sample=encoded_images(), cut=st.floats(0.0, 1.0))
def test_fuzz_images_of_any_mode_and_size_and_their_truncations(tmp_path, sample, cut):
    fmt, mode, (h, w), data = sample
    path = _write(tmp_path, f"img.{fmt.lower()}", data)
    arr = read_image(path)  # intact files always load
    assert arr.shape == (h, w, 3) and arr.dtype == np.uint8
    if fmt == "PNG" and mode in ("L", "RGB"):
        expected = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
        np.testing.assert_array_equal(arr, expected)  # lossless and 8-bit: exact
    truncated = _write(tmp_path, f"cut.{fmt.lower()}", data[: int(len(data) * cut)])
    try:
        arr = read_image(truncated)
    except UserError as exc:
        assert str(truncated) in str(exc)
    else:
        assert arr.shape[2] == 3 and arr.dtype == np.uint8


@FUZZ
@given(
    values=st.lists(st.integers(0, 255), min_size=1, max_size=64),
    num_classes=st.integers(1, 40),
    void=st.sets(st.integers(0, 255), max_size=2),
)
def test_fuzz_masks_are_checked_against_the_classes(tmp_path, values, num_classes, void):
    mask = np.array(values, np.uint8).reshape(1, -1)
    path = _write(tmp_path, "mask.png", _encode(Image.fromarray(mask, "L"), "PNG"))
    void_ids = tuple(sorted(void | {255}))
    bad = sorted({v for v in values if v >= num_classes and v not in void_ids})
    if bad:
        with pytest.raises(UserError) as info:
            read_mask(path, num_classes, void_ids)
        listed = ", ".join(map(str, bad[:10]))
        assert f"label values {listed}" in str(info.value) and str(path) in str(info.value)
        assert (" ..." in str(info.value)) == (len(bad) > 10)
    else:
        out = read_mask(path, num_classes, void_ids)
        expected = np.where(np.isin(mask, void_ids), 255, mask).astype(np.int64)
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == np.int64


@FUZZ
@given(
    img_hw=st.tuples(st.integers(1, 12), st.integers(1, 12)), mask_hw=st.tuples(st.integers(1, 12), st.integers(1, 12))
)
def test_fuzz_image_and_mask_sizes_must_match(tmp_path, img_hw, mask_hw):
    img_path = _write(tmp_path, "im.png", _encode(Image.new("RGB", img_hw[::-1]), "PNG"))
    mask_path = _write(tmp_path, "ma.png", _encode(Image.new("L", mask_hw[::-1]), "PNG"))
    ds = SegmentationDataset([(img_path, mask_path)], ClassSet("t", ("a", "b"), ((0, 0, 0), (1, 1, 1))))
    item = ds[0]
    if img_hw == mask_hw:
        assert "error" not in item and item["mask"].shape == img_hw
    else:
        err = item["error"]
        assert f"{mask_hw[1]}x{mask_hw[0]}" in err and f"{img_hw[1]}x{img_hw[0]}" in err
        assert "ma.png" in err and "im.png" in err
