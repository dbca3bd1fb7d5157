"""The machine's profile: cpuinfo of the CPU kinds the project runs on gives the right unit and native/emulated
answer per precision; the GEMM probe's size grows only while a product is quick and the budget allows; the
profile is cached (and --refresh measures again); ``segbench hardware`` prints a table and JSON."""

import json

import pytest

from segbench.bench import gemm, hardware
from segbench.bench.hardware import cpu_profile_static, gemm_rate, hardware_profile, hardware_summary, parse_cpuinfo

BASE = "fpu vme de pse tsc msr pae sse sse2 ssse3 sse4_1 sse4_2 avx f16c"
KINDS = {  # (vendor, family, model, flags beyond BASE)
    "zen4": ("AuthenticAMD", 25, 17, "fma avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni"),
    "sapphire_rapids": ("GenuineIntel", 6, 143, "fma avx2 avx512f avx512_bf16 avx512_vnni avx_vnni avx512_fp16 "
                                                "amx_bf16 amx_tile amx_int8"),
    "zen3": ("AuthenticAMD", 25, 1, "fma avx2"),
    "ice_lake": ("GenuineIntel", 6, 106, "fma avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni"),
}  # fmt: skip


def cpuinfo(kind: str, cpus=((0, 0), (0, 1))) -> str:
    vendor, family, model, flags = KINDS[kind]
    return "\n".join(
        f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        f"model name\t: test {kind}\ncpu MHz\t\t: 2000.000\ncache size\t: 1024 KB\nphysical id\t: {pid}\n"
        f"core id\t\t: {cid}\nflags\t\t: {BASE} {flags}\n"
        for i, (pid, cid) in enumerate(cpus)
    )  # fmt: skip


def test_parse_cpuinfo_reads_identity_cores_and_flags():
    cpu = parse_cpuinfo(cpuinfo("ice_lake"))
    assert (cpu["vendor"], cpu["family"], cpu["model"], cpu["mhz"]) == ("GenuineIntel", 6, 106, 2000.0)
    assert cpu["logical_cpus"] == 2 and cpu["physical_cores"] == 2 and cpu["cache_size_kb"] == 1024
    assert "avx512_vnni" in cpu["flags"] and "avx512_bf16" not in cpu["flags"]
    smt = parse_cpuinfo(cpuinfo("ice_lake", cpus=((0, 0), (0, 0))))  # two hyperthreads of one core
    assert smt["logical_cpus"] == 2 and smt["physical_cores"] == 1
    assert parse_cpuinfo("")["flags"] == [] and parse_cpuinfo("")["physical_cores"] is None


@pytest.mark.parametrize(
    ("kind", "arch", "units", "native", "per_cycle"),
    [
        ("zen4", "Zen 4", ("AVX-512 FMA", "AVX512-BF16", "emulated through fp32", "AVX-512 VNNI"),
         (True, True, False, True), (32, 64, 32, 128)),
        ("sapphire_rapids", "Sapphire Rapids", ("AVX-512 FMA", "AMX-BF16", "AVX512-FP16", "AMX-INT8"),
         (True, True, True, True), (64, 1024, 128, 2048)),
        ("zen3", "Zen 3", ("AVX2 FMA", "emulated through fp32", "emulated through fp32", "AVX2 without VNNI"),
         (True, False, False, True), (32, 32, 32, 64)),
        ("ice_lake", "Ice Lake", ("AVX-512 FMA", "emulated through fp32", "emulated through fp32", "AVX-512 VNNI"),
         (True, False, False, True), (64, 64, 64, 256)),
    ],
)  # fmt: skip
def test_each_cpu_kind_gets_its_units_and_native_precisions(kind, arch, units, native, per_cycle):
    profile = cpu_profile_static(cpuinfo(kind), threads=2)
    assert profile["microarchitecture"] == arch and profile["physical_cores"] == 2
    precisions = profile["precisions"]
    assert tuple(precisions) == ("fp32", "bf16", "fp16", "int8")
    assert tuple(p["unit"] for p in precisions.values()) == units
    assert tuple(p["native"] for p in precisions.values()) == native
    assert tuple(p["flops_per_cycle"] for p in precisions.values()) == per_cycle
    for p in precisions.values():  # cores x GHz x per cycle, the formula saying so
        assert p["theoretical_gflop_s"] == pytest.approx(2 * 2.0 * p["flops_per_cycle"])
        assert p["formula"].startswith("2 cores x 2 GHz x ") and p["unit"] in p["formula"]
    assert profile["features"]["AMX-INT8"] == (kind == "sapphire_rapids")
    assert profile["features"]["AVX512-BF16"] == (kind in ("zen4", "sapphire_rapids"))


def test_one_thread_counts_one_core():
    profile = cpu_profile_static(cpuinfo("zen3"), threads=1)
    assert profile["precisions"]["fp32"]["theoretical_gflop_s"] == pytest.approx(2.0 * 32)


def _fake_gemm(monkeypatch):
    """GEMMs that 'take' n^3 / 1e9 s: 2 GFLOP/s at every size, with no real work."""
    monkeypatch.setattr(gemm, "_gemm", lambda precision, n, device: (n, "fake"))
    monkeypatch.setattr(gemm, "_time_once", lambda n, device: n**3 / 1e9)


def test_probe_grows_until_a_product_takes_its_time_target(monkeypatch):
    _fake_gemm(monkeypatch)
    out = gemm_rate("fp32", budget_s=100.0, target_s=0.2)
    assert out["sizes"] == [64, 128, 256, 512, 1024]  # 512: 0.13 s < 0.2 s, grows; 1024: 1.07 s, stops
    assert out["n"] == 1024 and out["gflop_s"] == pytest.approx(2.0) and out["kernel"] == "fake"
    assert gemm_rate("fp32", budget_s=100.0, target_s=0.01)["n"] == 256  # 256: 0.017 s over 0.01 s
    assert gemm_rate("fp32", budget_s=100.0, max_n=128)["sizes"] == [64, 128]


def test_probe_does_not_grow_past_its_budget(monkeypatch):
    _fake_gemm(monkeypatch)
    # at 512 (0.13 s) the next size would take 2 x 1.07 s: over a 1.5 s budget
    assert gemm_rate("fp32", budget_s=1.5, target_s=0.2)["n"] == 512
    assert gemm_rate("fp32", budget_s=0.0, target_s=0.2)["sizes"] == [64]


def test_real_probe_with_a_tiny_budget_stays_small():
    out = gemm_rate("fp32", budget_s=0.05)
    assert out["gflop_s"] > 0 and out["n"] <= 1024 and out["sizes"][0] == 64


def test_profile_is_cached_and_refresh_measures_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_CACHE_DIR", str(tmp_path))
    calls = []

    def measure(profile, device, budget_s):
        calls.append(budget_s)
        profile["memory_bandwidth"] = {"copy_gb_s": 1.0 * len(calls)}

    monkeypatch.setattr(hardware, "_measure", measure)
    first = hardware_profile("cpu", 1)
    second = hardware_profile("cpu", 1)
    assert len(calls) == 1 and not first["cached"] and second["cached"]
    assert second["memory_bandwidth"] == {"copy_gb_s": 1.0} and second["cache_file"].startswith(str(tmp_path))
    third = hardware_profile("cpu", 1, refresh=True)
    assert len(calls) == 2 and not third["cached"] and hardware_profile("cpu", 1)["memory_bandwidth"]["copy_gb_s"] == 2.0
    hardware_profile("cpu", 2)  # another thread count is another profile
    assert len(calls) == 3 and not list(tmp_path.rglob("*.tmp"))


def test_cli_prints_the_profile_and_json(cli):
    flags = set(parse_cpuinfo(open("/proc/cpuinfo").read())["flags"]) if hardware._read("/proc/cpuinfo") else set()
    rc, out, err = cli("hardware", "--json", "--refresh")
    assert rc == 0, err
    profile = json.loads(out)
    assert profile["cached"] is False and set(profile["precisions"]) == {"fp32", "bf16", "fp16", "int8"}
    assert profile["precisions"]["bf16"]["native"] == bool({"amx_bf16", "avx512_bf16"} & flags)
    assert profile["precisions"]["fp32"]["measured"]["gflop_s"] > 0
    assert profile["memory_bandwidth"]["triad_gb_s"] > 0
    rc, out, _ = cli("hardware")
    assert rc == 0 and "cached" in out.splitlines()[0] and "native" in out and "memory bandwidth (measured)" in out
    assert any(line.split()[:1] == ["bf16"] for line in out.splitlines())
    rc, _, err = cli("hardware", "--device", "tpu")
    assert rc == 2 and "--device tpu" in err


def test_summary_lines_say_native_or_emulated_and_the_bandwidth():
    profile = cpu_profile_static(cpuinfo("zen3"), threads=2, caches={"L2": 512, "L3": 32768})
    profile["precisions"]["fp32"]["measured"] = {"gflop_s": 50.0, "n": 1024}
    profile["precisions"]["bf16"]["measured"] = {"gflop_s": 0.9, "n": 256}
    profile.update(memory_bandwidth={"copy_gb_s": 20.0, "triad_gb_s": 22.0, "array_mib": 128.0}, date="d", busy_pct=3.0)
    lines = hardware_summary(profile)
    assert "Zen 3" in lines["hardware"] and "L3 32768 KiB" in lines["hardware"]
    assert lines["hardware bf16"].startswith("emulated through fp32; theoretical 128.0") and "measured 0.9 (n = 256)" in lines["hardware bf16"]
    assert lines["hardware fp32"].startswith("AVX2 FMA, native; theoretical 128.0 GFLOP/s")
    assert lines["hardware int8"].startswith("AVX2 without VNNI, native;")
    assert lines["memory bandwidth"].startswith("measured copy 20.0 GB/s, triad 22.0 GB/s")
    assert "AVX-512" not in lines["hardware features"].split(", ") and "AVX2" in lines["hardware features"]
