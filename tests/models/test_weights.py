"""segbench.models.load_model: tags, files (safetensors, .pt checkpoints, raw state_dicts), strictness,
torchvision's coco_voc tag offline and cached, and zoo tags."""

import urllib.error

import pytest
import torch
from conftest import camvid_meta
from torchvision.models import segmentation as tvseg

from segbench.classes import CAMVID, VOC
from segbench.engine.checkpoint import save_safetensors
from segbench.errors import UserError
from segbench.models import available_weights, build_model, load_model
from segbench.models import weights as weights_mod
from segbench.models.weights import TORCHVISION_WEIGHTS


def _outputs(model, seed=0, size=(40, 56)):
    torch.manual_seed(seed)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def source_model():
    torch.manual_seed(3)
    model = build_model("fast_scnn", num_classes=CAMVID.num_classes).train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))  # non-trivial batch-norm statistics
    return model.eval()


def test_no_weights_is_an_error_that_mentions_weights_none():
    with pytest.raises(UserError, match="--weights none"):
        load_model("fast_scnn")


def test_weights_none_gives_random_initialisation():
    loaded = load_model("fast_scnn", weights="none", num_classes=4)
    assert loaded.info.weights == "none" and loaded.info.name == "fast_scnn"
    assert loaded.info.num_classes == 4 and loaded.info.class_names == ["0", "1", "2", "3"]
    assert len(loaded.info.palette) == 4
    assert _outputs(loaded.model).shape == (1, 4, 40, 56)
    # default classes: the builder's (19 for fast_scnn); 21 classes get VOC's names
    assert load_model("fast_scnn", weights="none").info.num_classes == 19
    assert load_model("fast_scnn", weights="none", num_classes=21).info.class_names == list(VOC.names)


def test_tag_and_weights_given_twice_is_an_error():
    with pytest.raises(UserError, match="given twice"):
        load_model("fast_scnn.camvid", weights="none")


def test_unknown_tag_lists_available():
    with pytest.raises(UserError, match="unknown weights 'nosuchtag'"):
        load_model("fast_scnn.nosuchtag")


def test_unknown_architecture_suggests():
    with pytest.raises(UserError, match="did you mean fast_scnn"):
        load_model("fastscnn", weights="none")


def test_safetensors_fp16_round_trip(tmp_path, source_model):
    path = tmp_path / "m.safetensors"
    size = save_safetensors(source_model, camvid_meta(), path)
    assert size == path.stat().st_size
    loaded = load_model(str(path))
    info = loaded.info
    assert info.arch == "fast_scnn" and info.num_classes == 11
    assert info.class_names == list(CAMVID.names)
    assert info.palette == [tuple(c) for c in CAMVID.palette]
    assert info.name == "fast_scnn(m.safetensors)"
    assert next(loaded.model.parameters()).dtype == torch.float32
    torch.testing.assert_close(_outputs(loaded.model), _outputs(source_model), atol=2e-2, rtol=2e-2)


def test_safetensors_fp32_is_exact(tmp_path, source_model):
    path = tmp_path / "m32.safetensors"
    save_safetensors(source_model, camvid_meta(), path, dtype=torch.float32)
    loaded = load_model("fast_scnn", weights=str(path))
    torch.testing.assert_close(_outputs(loaded.model), _outputs(source_model), atol=0, rtol=0)


def test_segbench_training_checkpoint_dict(tmp_path, source_model):
    path = tmp_path / "ckpt.pt"
    meta = {**camvid_meta(), "iteration": 7, "config": {"iters": 7}}
    torch.save({"model": source_model.state_dict(), "meta": meta, "iteration": 7}, path)
    loaded = load_model(str(path))
    assert loaded.info.class_names == list(CAMVID.names)
    assert loaded.info.meta["config"] == {"iters": 7}
    torch.testing.assert_close(_outputs(loaded.model), _outputs(source_model), atol=0, rtol=0)


def test_raw_state_dict_needs_the_architecture(tmp_path, source_model):
    path = tmp_path / "raw.pth"
    torch.save(source_model.state_dict(), path)
    loaded = load_model("fast_scnn", weights=str(path))
    assert loaded.info.num_classes == 11  # read from the classifier's shape
    assert loaded.info.class_names == [str(i) for i in range(11)]
    torch.testing.assert_close(_outputs(loaded.model), _outputs(source_model), atol=0, rtol=0)
    with pytest.raises(UserError, match="does not say its architecture"):
        load_model(str(path))


def test_raw_state_dict_with_aux_head_builds_the_aux_head(tmp_path):
    model = build_model("fast_scnn", num_classes=3, aux_loss=True)
    path = tmp_path / "aux.pth"
    torch.save(model.state_dict(), path)
    loaded = load_model("fast_scnn", weights=str(path))
    assert loaded.model.aux_head is not None


def test_missing_keys_are_listed(tmp_path, source_model):
    state = {k: v for k, v in source_model.state_dict().items() if not k.startswith("decoder.high.")}
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as info:
        load_model("fast_scnn", weights=str(path))
    msg = str(info.value)
    assert "do not fit" in msg and "missing keys" in msg and "decoder.high.0.weight" in msg
    assert str(path) in msg


def test_unexpected_keys_are_listed(tmp_path, source_model):
    state = dict(source_model.state_dict())
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"unexpected keys \[extra.weight\]"):
        load_model("fast_scnn", weights=str(path))


def test_wrong_architecture_is_listed(tmp_path, source_model):
    path = tmp_path / "other.pth"
    torch.save(source_model.state_dict(), path)
    with pytest.raises(UserError, match=r"do not fit.*missing keys \[encoder\.features\.0\.0\.weight"):
        load_model("lraspp_mobilenet_v3_large", weights=str(path))


def test_shape_mismatch_names_the_key(tmp_path):
    small = build_model("fast_scnn", num_classes=5)
    path = tmp_path / "mismatch.safetensors"
    save_safetensors(small, camvid_meta(), path)  # metadata says 11 classes, tensors hold 5
    with pytest.raises(UserError) as info:
        load_model(str(path))
    msg = str(info.value)
    assert "do not fit" in msg and "size mismatch" in msg and "classifier.3" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_corrupt_file_is_a_user_error(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(b"\x00\x01 this is not a weights file " * 10)
    with pytest.raises(UserError, match="cannot read"):
        load_model("fast_scnn", weights=str(path))


def test_corrupt_pt_message_is_one_line(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"\x00\x01 this is not a weights file " * 10)
    with pytest.raises(UserError) as info:
        load_model("fast_scnn", weights=str(path))
    assert "\n" not in str(info.value)


def test_missing_weights_file(tmp_path):
    with pytest.raises(UserError, match="no such weights file"):
        load_model(str(tmp_path / "absent.safetensors"))


def test_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match="not a state_dict"):
        load_model("fast_scnn", weights=str(path))


def test_coco_voc_offline_says_which_file_to_place_where(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    file_name = TORCHVISION_WEIGHTS["lraspp_mobilenet_v3_large"].url.rsplit("/", 1)[-1]
    assert file_name.startswith("lraspp_mobilenet_v3_large-") and file_name.endswith(".pth")
    with pytest.raises(UserError) as info:
        load_model("lraspp_mobilenet_v3_large.coco_voc")
    msg = str(info.value)
    assert file_name in msg
    assert str(tmp_path / "checkpoints" / file_name) in msg
    assert "offline" in msg and "\n" not in msg
    assert not (tmp_path / "checkpoints" / file_name).exists()


def test_coco_voc_loads_the_cached_file(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("must not download when the file is present")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    file_name = TORCHVISION_WEIGHTS["lraspp_mobilenet_v3_large"].url.rsplit("/", 1)[-1]
    torch.manual_seed(5)
    tv = tvseg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).eval()
    (tmp_path / "checkpoints").mkdir()
    torch.save(tv.state_dict(), tmp_path / "checkpoints" / file_name)
    loaded = load_model("lraspp_mobilenet_v3_large", weights="coco_voc")
    assert loaded.info.name == "lraspp_mobilenet_v3_large.coco_voc"
    assert loaded.info.num_classes == 21 and loaded.info.class_names == list(VOC.names)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(x), tv(x)["out"])


def test_zoo_tags(tmp_path, monkeypatch, source_model):
    monkeypatch.setattr(weights_mod, "zoo_dir", lambda: tmp_path)
    assert available_weights("fast_scnn") == []
    save_safetensors(source_model, camvid_meta(), tmp_path / "fast_scnn.testtag.safetensors")
    assert available_weights("fast_scnn") == ["testtag"]
    assert available_weights("lraspp_mobilenet_v3_large") == ["coco_voc"]
    loaded = load_model("fast_scnn.testtag")
    assert loaded.info.name == "fast_scnn.testtag" and loaded.info.weights == "fast_scnn.testtag"
    assert loaded.info.class_names == list(CAMVID.names)
    assert load_model("fast_scnn", weights="testtag").info.name == "fast_scnn.testtag"
    torch.testing.assert_close(_outputs(loaded.model), _outputs(source_model), atol=2e-2, rtol=2e-2)
    with pytest.raises(UserError, match="use fast_scnn.testtag"):
        load_model("fast_scnn")
