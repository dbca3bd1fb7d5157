"""Evaluation sharded over processes: every image once, and the merged result equal to one process's,
in process (shards merged by hand), in two spawned gloo processes, and through torchrun and the CLI."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as tmp
from dataset_layouts import make_cityscapes, save_checkpoint
from torch import nn

from segbench.classes import CITYSCAPES
from segbench.data.datasets import open_dataset
from segbench.engine.evaluate import evaluate
from segbench.engine.inference import InferenceConfig
from segbench.engine.sharded import _replay, evaluate_sharded, merge_payloads, result_payload, shard_indices
from segbench.metrics.per_image import ScoreOptions
from segbench.preprocessing import Preprocessing

WORLD = 2
PRE = Preprocessing((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _colour_model() -> nn.Module:
    """Logits from each pixel's colour (a seeded 1 x 1 convolution): label maps that vary within and
    between images, so a lost, repeated or misplaced image changes the confusion matrix."""
    torch.manual_seed(0)
    return nn.Conv2d(3, CITYSCAPES.num_classes, 1).eval()


def _dataset(root):
    ds = open_dataset(root, "val")
    (ds.pairs[2][0]).write_bytes(b"not a png")  # one rank skips a file
    return ds


SCORES = ScoreOptions(boundary=True, trimap=True, max_width=3, ece=True, num_bins=7, bootstrap=20)
"""Every optional score, small: their merge over processes must equal one process exactly."""


def _summary(res) -> dict:
    return {
        "extra": [json.dumps(v.extra, sort_keys=True) for v in res.variants],  # boundary, trimap, ECE, exactly
        "trimap_per_image": [v.trimap_confusions.tolist() for v in res.variants],
        "num_images": res.num_images,
        "confusion": [v.metrics.confusion for v in res.variants],
        "per_image": [v.confusions.tolist() for v in res.variants],  # one matrix per image, in image order
        "image_names": list(res.image_names),
        "variants": [v.name for v in res.variants],
        "skipped": [s["file"] for s in res.skipped],
        "kept": list(res.predictions),
        "kept_sums": [int(p.sum()) for p in res.predictions.values()],
    }


def _kwargs(ds):
    return {"keep": {p.stem for p, _ in ds.pairs}, "progress": False, "inference": InferenceConfig(flip=True),
            "scores": SCORES, "class_names": list(CITYSCAPES.names)}  # fmt: skip


@pytest.mark.parametrize("n", [0, 1, 4, 5, 7])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_hold_every_image_exactly_once(n, world):
    shards = [shard_indices(n, r, world) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_merged_shards_equal_one_pass(tmp_path):
    ds = _dataset(make_cityscapes(tmp_path / "cs", frames={"val": 5}, train_ids=True))
    model = _colour_model()
    whole = evaluate(model, ds, CITYSCAPES.num_classes, PRE, **_kwargs(ds))
    payloads = []
    for rank in range(WORLD):
        idx = shard_indices(len(ds), rank, WORLD)
        shard = ds.subset([ds.pairs[i] for i in idx])
        payloads.append(result_payload(evaluate(model, shard, CITYSCAPES.num_classes, PRE, **_kwargs(ds)), idx, shard))
    merged = merge_payloads(payloads, CITYSCAPES.num_classes, SCORES, list(CITYSCAPES.names))
    assert _summary(merged) == _summary(whole)
    for v in whole.variants:  # the scores compared are there, and not trivial
        assert set(v.extra) == {"boundary", "trimap", "calibration"} and 0 < v.extra["calibration"]["ece"] < 1
        assert v.extra["boundary"]["boundary_miou_interval"][0] < v.extra["boundary"]["boundary_miou_interval"][1]
    one_shard = payloads[0]["steps"][0][4]  # a shard's own counts: the merge is not rank 0's alone
    assert len(one_shard["boundary"]) == len(one_shard["calibration_count"]) < merged.num_images
    assert len(np.unique(list(whole.predictions.values())[0])) > 3  # the model's label maps do vary
    assert merged.metrics.miou == whole.metrics.miou and merged.variants[1].ms_per_image > 0


def test_on_image_calls_are_replayed_on_rank_0_in_image_order(tmp_path):
    ds = _dataset(make_cityscapes(tmp_path / "cs", frames={"val": 5}, train_ids=True))
    maps = {i: np.full((12, 16), i) for i in range(5)}
    payloads = [{"seen": [(i, maps[i], None) for i in shard_indices(5, r, WORLD) if i != 2]} for r in range(WORLD)]
    calls = []
    _replay(payloads, ds, lambda item, pred, conf: calls.append((item["name"], int(pred[0, 0]), item["mask"].shape)))
    assert calls == [(ds.pairs[i][0].stem, i, (12, 16)) for i in (0, 1, 3, 4)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _FailsOnRank1(nn.Module):
    def forward(self, x):
        raise RuntimeError("out of memory on this rank")


def _rank(rank, port, root, out) -> None:
    from segbench.engine.distributed import cleanup, init_distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    init_distributed("cpu")
    ds = open_dataset(root, "val")
    res = evaluate_sharded(_colour_model(), ds, CITYSCAPES.num_classes, PRE, **_kwargs(ds))
    failed = None
    try:
        model = _FailsOnRank1() if rank == 1 else _colour_model()
        evaluate_sharded(model, ds, CITYSCAPES.num_classes, PRE, **_kwargs(ds))
    except RuntimeError as exc:
        failed = str(exc)
    (out / f"rank{rank}.json").write_text(json.dumps({"result": _summary(res), "failed": failed}))
    cleanup()


def test_two_gloo_processes_equal_one_process(tmp_path):
    root = make_cityscapes(tmp_path / "cs", frames={"val": 5}, train_ids=True)
    ds = _dataset(root)
    torch.set_num_threads(1)
    one = _summary(evaluate(_colour_model(), ds, CITYSCAPES.num_classes, PRE, **_kwargs(ds)))
    tmp.start_processes(_rank, args=(_free_port(), root, tmp_path), nprocs=WORLD, start_method="spawn")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0]["result"] == one  # confusion matrices of plain and +flip, counts, skipped, kept maps
    assert ranks[1]["result"]["num_images"] == 2  # rank 1 evaluated images 1 and 3 (2 is unreadable)
    for r in ranks:  # a failure on rank 1 is raised on both ranks; neither waits forever
        assert r["failed"] == "rank 1: RuntimeError: out of memory on this rank"


def _stopped_rank(rank, port, argv, out) -> None:
    """``segbench evaluate`` on one of two gloo processes, sent a real SIGTERM once it has scored one image."""
    import signal

    import segbench.engine.evaluate as engine
    from segbench.cli import main

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    real, scored = engine._score, []

    def then_terminated(variants, preds, item, keep, result):
        real(variants, preds, item, keep, result)
        scored.append(item["name"])
        if len(scored) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    engine._score = then_terminated
    rc = main(argv)
    (out / f"stopped{rank}.json").write_text(json.dumps({"rc": rc, "scored": scored}))


def test_a_torchrun_evaluation_stopped_keeps_every_process_images_and_one_process_resumes(tmp_path, monkeypatch):
    import segbench.engine.evaluate as engine
    from segbench.cli import main

    root = make_cityscapes(tmp_path / "cs", frames={"val": 5}, train_ids=True)
    ckpt = save_checkpoint(tmp_path / "cs.safetensors", CITYSCAPES)
    argv = ["evaluate", str(ckpt), "--data", str(root), "--quiet", "--boundary", "--ece", "--bootstrap", "20"]
    torch.set_num_threads(1)
    assert main([*argv, "--output", str(tmp_path / "whole")]) == 0  # uninterrupted, one process: the reference
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    out = tmp_path / "ev"
    tmp.start_processes(_stopped_rank, args=(_free_port(), [*argv, "--output", str(out)], tmp_path), nprocs=WORLD,
                        start_method="spawn")  # fmt: skip
    stopped = [json.loads((tmp_path / f"stopped{r}.json").read_text()) for r in range(WORLD)]
    assert [s["rc"] for s in stopped] == [143, 143] and all(len(s["scored"]) == 1 for s in stopped)
    kept = sorted(q.name for q in out.iterdir() if q.name.startswith("evaluate.partial"))
    assert kept == ["evaluate.partial.rank0.npz", "evaluate.partial.rank1.npz"]  # each process kept its image
    real, scored = engine._score, []

    def counting(variants, preds, item, keep, result):
        real(variants, preds, item, keep, result)
        scored.append(item["name"])

    monkeypatch.setattr(engine, "_score", counting)
    assert main([*argv, "--output", str(out), "--resume"]) == 0  # one process resumes the two processes' run
    done_before = {s["scored"][0] for s in stopped}
    assert len(scored) == 3 and not done_before & set(scored)  # only the images neither process had scored
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["num_images"] == whole["num_images"] == 5 and resumed["resumed_images"] == 2
    for key in ("confusion", "miou", "iou", "miou_interval", "boundary", "calibration"):
        assert resumed[key] == whole[key], key  # the same figures as one uninterrupted run
    assert not [q for q in out.iterdir() if q.name.startswith("evaluate.partial")]  # finished: nothing to resume


def _torchrun(args, cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "-m", "segbench.cli", *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env, check=False)


def _one_process(args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "segbench.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env=env, check=False)  # fmt: skip


@pytest.mark.slow  # torchrun, two processes each importing torch, and one more process
def test_torchrun_evaluate_and_compare_equal_one_process(tmp_path):
    root = make_cityscapes(tmp_path / "cs", frames={"val": 3}, train_ids=True)
    ckpt = save_checkpoint(tmp_path / "cs.safetensors", CITYSCAPES)
    scores = ["--boundary", "--trimap", "--ece"]
    two = _torchrun(["evaluate", ckpt, "--data", root, "--output", tmp_path / "two", "--quiet", *scores], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1 and two.stdout.count("(val, 3 images") == 1  # rank 0 alone prints
    one = _one_process(["evaluate", ckpt, "--data", root, "--output", tmp_path / "one", "--quiet", *scores], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert m2["confusion"] == m1["confusion"] and m2["num_images"] == m1["num_images"] == 3
    for key in ("boundary", "trimap", "calibration"):  # merged from every image's counts: exactly one process's
        assert m2[key] == m1[key] and m1[key], key
    assert (tmp_path / "one" / "confusion_matrix.csv").read_text() == (tmp_path / "two" / "confusion_matrix.csv").read_text()
    report = tmp_path / "report"
    args = ["--data", root, "--in-process", "--min-time", "0.01", "--grid", "1", "--quiet", "--trimap"]
    cmp = _torchrun(["compare", ckpt, "--output", report, *args], tmp_path)  # boundary IoU and ECE by default
    assert cmp.returncode == 0, cmp.stderr[-3000:]
    assert cmp.stdout.count("report: ") == 1
    rows = json.loads((report / "results.json").read_text())["rows"]
    assert rows[0]["miou"] == pytest.approx(m1["miou"], abs=1e-12) and rows[0]["num_images"] == 3
    alone = _one_process(["compare", ckpt, "--output", tmp_path / "alone", *args], tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    (single,) = json.loads((tmp_path / "alone" / "results.json").read_text())["rows"]
    for key in ("boundary", "boundary_miou", "trimap", "calibration", "ece"):
        assert rows[0][key] == single[key] and single[key] is not None, key
    bad = _torchrun(["evaluate", ckpt, "--data", tmp_path / "nowhere"], tmp_path)
    assert bad.returncode != 0 and bad.stderr.count("segbench: error: ") == 1  # rank 0's line
    assert "no such file or folder" in bad.stderr and "/segbench/" not in bad.stderr  # no segbench traceback


@pytest.mark.slow  # torchrun, two processes each importing torch, then a resume in this process
def test_a_torchrun_compare_stopped_after_one_model_keeps_its_row_and_one_process_resumes(tmp_path, capsys):
    import signal
    import time

    from conftest import make_camvid

    from segbench.cli import main

    root = make_camvid(tmp_path / "cv")
    out = tmp_path / "report"
    args = ["compare", "fast_scnn", "lraspp_mobilenet_v3_large", "--data", root, "--output", out, "--weights", "none",
            "--max-images", 2, "--grid", 1, "--size", 32, 32, "--no-boundary", "--no-ece", "--bootstrap", 0,
            "--in-process", "--min-time", 2]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "-m", "segbench.cli", *map(str, args)]  # fmt: skip
    err = tmp_path / "err.txt"
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=f,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        deadline = time.monotonic() + 600
        while "[1/2] fast_scnn: finished" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # to torchrun's agent, which passes it on to both processes
        proc.wait(timeout=120)
    text = err.read_text()
    assert "1 of 2 model(s) finished (terminated by SIGTERM)" in text, text[-3000:]
    partial = json.loads((out / "results.json").read_text())
    assert partial["partial"] is True and [r["model"] for r in partial["rows"]] == ["fast_scnn"]
    capsys.readouterr()
    assert main([*map(str, args), "--resume"]) == 0
    assert "[1/1] lraspp_mobilenet_v3_large: finished" in capsys.readouterr().err
    final = json.loads((out / "results.json").read_text())
    assert not final.get("partial") and [r["model"] for r in final["rows"]] == ["fast_scnn", "lraspp_mobilenet_v3_large"]
    assert final["rows"][0]["latency_ms_p50"] == partial["rows"][0]["latency_ms_p50"]  # kept, not measured again
