"""Rows from different machines are named as such: a resumed benchmark or compare that ended elsewhere."""

from segbench.bench.machines import machine_id, machines_differ

ZEN4 = {"kind": "cpu", "model_name": "AMD EPYC", "microarchitecture": "Zen 4", "physical_cores": 2, "threads": 2,
        "flags_sha1": "30614b814dc1"}  # fmt: skip
SPR = {**ZEN4, "model_name": "Intel Xeon Platinum", "microarchitecture": "Sapphire Rapids", "flags_sha1": "a1b2"}


def test_machine_id_names_the_cpu_its_cores_and_flags():
    assert machine_id(ZEN4) == "AMD EPYC (Zen 4), 2 cores, 2 threads, flags 30614b814dc1"
    assert machine_id({**ZEN4, "threads": 1}) != machine_id(ZEN4)  # threads used change the speed too
    assert machine_id({"kind": "cuda", "model_name": "NVIDIA H100"}) == "NVIDIA H100 (CUDA)"
    assert machine_id(None, "cpu string") == "cpu string" and machine_id(None) is None


def test_rows_of_two_machines_are_named_with_their_counts():
    rows = [{"machine": machine_id(ZEN4)}, {"machine": machine_id(ZEN4)}, {"machine": machine_id(SPR)}, {}]
    line = machines_differ(rows)
    assert line.startswith("warning: these rows were measured on 2 different machines")
    assert f"{machine_id(ZEN4)}: 2 row(s)" in line and f"{machine_id(SPR)}: 1 row(s)" in line
    assert machines_differ(rows[:2] + rows[3:]) is None


def test_benchmark_rows_carry_their_machine_and_the_cli_warns(tmp_path, monkeypatch, capsys):
    import json

    from segbench.cli import main

    out = tmp_path / "bench"
    assert main(["benchmark", "fast_scnn", "--size", "32x48", "--min-time", "0.01", "--budget", "0.05",
                 "--warmup-time", "0", "--no-isolate", "--no-e2e", "--no-train-step", "--output", str(out),
                 "--quiet"]) == 0  # fmt: skip
    rows = json.loads((out / "benchmark.json").read_text())
    assert rows[0]["machine"] and "flags" in rows[0]["machine"]
    from segbench.cli.common import print_row_warnings

    capsys.readouterr()
    print_row_warnings(rows + [{**rows[0], "machine": machine_id(SPR)}])
    assert "2 different machines" in capsys.readouterr().err
