"""``hf:FOLDER`` specs: tiny random transformers models saved to tmp_path (no network), preprocessing from their
image processor config, logits at the input size, class names from id2label."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from segbench.errors import UserError
from segbench.external import load_any

T = pytest.importorskip("transformers", reason="hf: specs need pip install -e '.[hf]'")

ID2LABEL = {0: "road", 1: "car", 2: "person"}
LABELS = {"num_labels": 3, "id2label": ID2LABEL, "label2id": {v: k for k, v in ID2LABEL.items()}}
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def _swin():
    return T.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                        window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])  # fmt: skip


def _model(kind: str):
    torch.manual_seed(0)
    if kind == "segformer":
        return T.SegformerForSemanticSegmentation(T.SegformerConfig(
            num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
            strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16, **LABELS))
    if kind == "upernet":
        backbone = T.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                                    out_features=["stage1", "stage2", "stage3", "stage4"])
        return T.UperNetForSemanticSegmentation(T.UperNetConfig(
            backbone_config=backbone, hidden_size=16, auxiliary_in_channels=16, use_auxiliary_head=False, **LABELS))
    if kind == "dpt":
        return T.DPTForSemanticSegmentation(T.DPTConfig(
            hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=32,
            patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16,
            reassemble_factors=[4, 2, 1, 0.5], use_auxiliary_head=False, **LABELS))
    if kind == "mask2former":
        return T.Mask2FormerForUniversalSegmentation(T.Mask2FormerConfig(
            backbone_config=_swin(), feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
            dim_feedforward=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2, num_queries=5, **LABELS))
    decoder = T.DetrConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5)
    return T.MaskFormerForInstanceSegmentation(T.MaskFormerConfig(
        backbone_config=_swin(), decoder_config=decoder, fpn_feature_size=32, mask_feature_size=32, num_queries=5,
        **LABELS))  # fmt: skip


def _save(kind: str, folder, processor: dict):
    model = _model(kind).eval()
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "image_mean": MEAN,
                                                                 "image_std": STD, **processor}))  # fmt: skip
    return model


@pytest.mark.parametrize("kind", ["segformer", "upernet", "dpt"])
def test_per_pixel_models_give_logits_at_the_input_size(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _save(kind, tmp_path / kind, {"do_resize": True, "size": {"height": 32, "width": 32}})
    loaded = load_any(f"hf:{tmp_path / kind}")
    info = loaded.info
    assert info.kind == "hf" and info.class_names == ["road", "car", "person"] and info.missing == ""
    assert info.mean == tuple(MEAN) and info.std == tuple(STD) and info.meta["hf_model_type"] == kind
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = loaded.model(x)
        inner = model(pixel_values=F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)).logits
    expected = F.interpolate(inner, size=(40, 56), mode="bilinear", align_corners=False)
    assert out.shape == (1, 3, 40, 56) and torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["mask2former", "maskformer"])
def test_mask_classification_models_combine_class_and_mask_logits(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _save(kind, tmp_path / kind, {"do_resize": False, "size_divisor": 32})
    loaded = load_any(f"hf:{tmp_path / kind}")
    assert loaded.info.class_names == ["road", "car", "person"] and loaded.model.mask_classification
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = loaded.model(x)
        raw = model(pixel_values=F.pad(x, (0, 8, 0, 24)))  # padded to 64 x 64
    masks = F.interpolate(raw.masks_queries_logits.sigmoid(), size=(64, 64), mode="bilinear")[..., :40, :56]
    semantic = torch.einsum("nqc,nqhw->nchw", raw.class_queries_logits.softmax(-1)[..., :-1], masks)
    assert out.shape == (1, 3, 40, 56)
    assert torch.equal(out.argmax(1), semantic.argmax(1))
    assert torch.allclose(out.exp(), semantic.clamp_min(1e-6), atol=1e-5)


def test_offline_and_not_cached_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not a folder and not in the local Hugging Face cache"):
        load_any("hf:no-such-org/no-such-model-here")
    T.BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                 intermediate_size=8).save_pretrained(tmp_path / "bert")  # fmt: skip
    with pytest.raises(UserError, match="cannot load it as a semantic segmentation model"):
        load_any(f"hf:{tmp_path / 'bert'}")
    with pytest.raises(UserError, match="expected hf:FOLDER"):
        load_any("hf:")
