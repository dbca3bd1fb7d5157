"""Native first: ``--backend best`` and the default backend lists choose among the backends whose precision the
CPU computes natively (one table, segbench.bench.units), say which they left out and why, and a backend named
explicitly still runs with a warning. Every CPU here is a faked flags set: no test depends on this machine."""

from __future__ import annotations

import json

import pytest

from segbench.bench import select, units
from segbench.bench.backends import backend_names, registered
from segbench.bench.units import UNITS, native_flags, not_native_reason, precision_units, unit_for

BASE = {"fpu", "sse", "sse2", "avx", "fma", "avx2"}
KINDS = {  # the CPU kinds of issue 26 (cpuinfo flags)
    "epyc_avx512_bf16": BASE | {"avx512f", "avx512_bf16", "avx512_vnni"},
    "epyc_avx512_no_bf16": BASE | {"avx512f", "avx512_vnni"},
    "sapphire_rapids": BASE | {"avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512_fp16", "amx_tile",
                               "amx_bf16", "amx_int8"},
    "zen3_avx2": BASE,
    "ice_lake": BASE | {"avx512f", "avx512_vnni"},
}  # fmt: skip
NO_AVX2 = {"fpu", "sse", "sse2", "avx"}  # an older x86: fp32 alone is native (no int8 kernel, bf16 emulated)
NATIVE = {  # kind -> the precisions it computes natively
    "epyc_avx512_bf16": {"fp32", "bf16", "int8"},
    "epyc_avx512_no_bf16": {"fp32", "int8"},
    "sapphire_rapids": {"fp32", "bf16", "int8"},
    "zen3_avx2": {"fp32", "int8"},  # AVX2 int8 (vpmaddubsw): integer arithmetic, not through fp32
    "ice_lake": {"fp32", "int8"},
}


@pytest.fixture
def all_installed(monkeypatch):
    """Every backend's packages count as installed, so the candidate lists depend on the CPU alone."""
    monkeypatch.setattr(select, "_installed", lambda *modules: True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_best_candidates_are_what_the_cpu_computes_natively(kind, all_installed):
    chosen, left_out = select.native_candidates("cpu", KINDS[kind])
    assert chosen == [b.name for b in registered() if b.precision in NATIVE[kind] and "cpu" in b.devices]
    assert chosen[0] == "eager" and set(chosen).isdisjoint(left_out)
    assert set(left_out) == {b.name for b in registered() if b.precision not in NATIVE[kind]}
    for name, why in left_out.items():
        precision = next(b.precision for b in registered() if b.name == name)
        assert why.startswith(f"{precision}: ") and "on this CPU (no " in why
    if "bf16" not in NATIVE[kind]:
        assert left_out["bf16"] == "bf16: emulated on this CPU (no amx_bf16/avx512_bf16)"
    assert select.expand_backends(["best"], "cpu", KINDS[kind]) == chosen


def test_a_cpu_without_avx2_leaves_int8_out(all_installed):
    chosen, left_out = select.native_candidates("cpu", NO_AVX2)
    assert left_out["onnxruntime_int8"] == ("int8: no int8 dot-product unit on this CPU "
                                            "(no amx_int8/avx512_vnni/avx_vnni/avx2)")  # fmt: skip
    assert "eager" in chosen and not [b for b in chosen if "int8" in b]


def test_on_cuda_every_precision_is_native(all_installed):
    chosen, left_out = select.native_candidates("cuda", KINDS["zen3_avx2"])
    assert left_out == {} and chosen == [b.name for b in registered() if "cuda" in b.devices]


def test_a_missing_package_is_left_out_with_the_install_hint(monkeypatch):
    monkeypatch.setattr(select, "_installed", lambda *modules: "openvino" not in modules)
    chosen, left_out = select.native_candidates("cpu", KINDS["sapphire_rapids"])
    assert "openvino" not in chosen and "onnxruntime" in chosen
    assert left_out["openvino"] == "not installed (openvino: pip install 'segbench[openvino]')"


def test_the_units_table_is_ordered_best_first_and_ends_with_a_fallback():
    for precision, units_ in UNITS.items():
        assert units_[-1].flags == ()  # every CPU gets an answer
        assert [u.native for u in units_] == sorted((u.native for u in units_), reverse=True)
    assert unit_for("int8", KINDS["sapphire_rapids"]).name == "AMX-INT8"  # AMX before VNNI
    assert unit_for("bf16", KINDS["epyc_avx512_bf16"]).name == "AVX512-BF16"
    assert native_flags("bf16") == ("amx_bf16", "avx512_bf16") and native_flags("fp32") == ()
    assert not_native_reason("fp32", set()) is None and not_native_reason("tf32", set()) is None
    for kind, flags in KINDS.items():  # the profile and the registry read the same table
        assert {p for p, u in precision_units(flags, 32).items() if u["native"]} - {"fp16"} == NATIVE[kind]


def test_named_emulated_backends_warn_and_best_says_what_it_left_out(all_installed):
    lines = select.native_notes(["eager", "bf16", "onnxruntime_int8"], "cpu", KINDS["zen3_avx2"])
    assert lines == [
        "warning: --backend bf16: bf16: emulated on this CPU (no amx_bf16/avx512_bf16); it runs, slower than a "
        "native precision would",
    ]  # fmt: skip
    lines = select.native_notes(["onnxruntime_int8"], "cpu", NO_AVX2)
    assert lines == ["warning: --backend onnxruntime_int8: int8: no int8 dot-product unit on this CPU (no amx_int8/"
                     "avx512_vnni/avx_vnni/avx2); it runs, slower than a native precision would"]  # fmt: skip
    assert select.native_notes(["eager", "bf16"], "cpu", KINDS["sapphire_rapids"]) == []
    lines = select.native_notes(["best"], "cpu", KINDS["ice_lake"])
    assert lines[0].startswith("best: choosing among eager, channels_last, compile")
    assert "best: left out compile_bf16 (bf16: emulated on this CPU (no amx_bf16/avx512_bf16))" in lines
    assert not any("int8" in line for line in lines[1:])


def test_mark_best_records_the_left_out_backends(all_installed):
    rows = [{"backend": "eager", "latency_ms_p50": 10.0, "miou": 0.5},
            {"backend": "channels_last", "latency_ms_p50": 8.0, "miou": 0.5}]  # fmt: skip
    choice = select.mark_best(rows, "cpu", KINDS["ice_lake"])
    assert choice["backend"] == "channels_last" and rows[1]["best_choice"] is choice
    assert set(choice["left_out"]) == set(backend_names(precision="bf16"))
    assert "left out bf16: bf16: emulated on this CPU" in select.describe_choice("m", choice)


def test_benchmark_best_times_the_native_candidates_and_says_why_others_are_not(cli, monkeypatch, tmp_path):
    monkeypatch.setattr(units, "machine_flags", lambda: NO_AVX2)
    few = tuple(b for b in registered() if b.name in ("eager", "channels_last", "bf16", "onnxruntime_int8"))
    monkeypatch.setattr(select, "registered", lambda: few)  # a short run: two native, two not
    rc, out, err = cli("benchmark", "fast_scnn", "--backend", "best", "--size", "32x48", "--no-isolate",
                       "--min-time", "0.01", "--budget", "0.2", "--warmup-time", "0", "--no-e2e", "--no-train-step",
                       "--no-probe", "--output", tmp_path / "b")  # fmt: skip
    assert rc == 0, err
    assert "best: choosing among eager, channels_last (what this machine computes natively)" in err
    assert "best: left out bf16 (bf16: emulated on this CPU (no amx_bf16/avx512_bf16))" in err
    rows = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert [r["backend"] for r in rows] == ["eager", "channels_last"]
    chosen = [r for r in rows if r.get("best")]
    assert len(chosen) == 1 and "deploy fast_scnn (batch 1, input [32, 48])" in out
    assert set(chosen[0]["best_choice"]["left_out"]) == {"bf16", "onnxruntime_int8"}
