"""End to end with the stages overlapped (decode on a prefetch thread, postprocess and scoring on a worker thread,
the model on the caller's) gives the same masks and mIoU as the serial measurement; evaluate's metrics, now
accumulated on a worker thread, equal a serial computation."""

import threading

import numpy as np
import torch
from PIL import Image
from torch import nn

from segbench.bench.e2e import measure_end_to_end, measure_pipelined
from segbench.engine.evaluate import evaluate, predict_mask
from segbench.metrics import ConfusionMatrix
from segbench.preprocessing import Preprocessing


def _images(tmp_path, n=3, seed=0):
    rng = np.random.default_rng(seed)
    paths, masks = [], []
    for i in range(n):
        img = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
        mask = rng.integers(0, 3, img.shape[:2]).astype(np.int64)
        mask[0, 0] = 255
        masks.append(mask)
    return paths, masks


def test_pipelined_end_to_end_scores_like_the_serial_one_and_overlaps(tmp_path):
    paths, masks = _images(tmp_path)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()
    threads = set()

    def predictor(x):
        threads.add(threading.current_thread().name)
        return net(x)

    kw = {"preprocessing": Preprocessing((0.5,) * 3, (0.25,) * 3), "input_size": (16, 24), "num_classes": 3,
          "masks": masks}
    serial = measure_end_to_end(predictor, paths, min_time_s=0, warmup=0, **kw)
    piped = measure_pipelined(predictor, paths, min_time_s=0, **kw)
    assert piped["miou"] == serial["miou"] and 0 < piped["miou"] < 1
    assert piped["e2e_pipelined_images"] % len(paths) == 0 and piped["e2e_pipelined_img_s"] > 0
    assert threads == {threading.current_thread().name}  # the model stays on the caller's thread
    assert not any(t.name.startswith(("segbench-prefetch", "segbench-post")) and t.is_alive()
                   for t in threading.enumerate())  # fmt: skip


def test_evaluate_metrics_equal_a_serial_computation(tmp_path, camvid_root):
    from segbench.classes import CAMVID
    from segbench.data.datasets import open_dataset

    dataset = open_dataset(camvid_root, "val")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 11, 1)).eval()
    pre = Preprocessing((0.4, 0.4, 0.4), (0.3, 0.3, 0.3))
    res = evaluate(net, dataset, 11, pre, progress=False, keep={dataset.pairs[0][0].stem})
    cm = ConfusionMatrix(11)
    for i in range(len(dataset)):
        item = dataset[i]
        pred = torch.from_numpy(np.asarray(predict_mask(net, item["image"], pre)).astype(np.int64))
        cm.update(pred.unsqueeze(0), torch.from_numpy(item["mask"]).unsqueeze(0))
    assert res.num_images == len(dataset) == 2 and len(CAMVID.names) == 11
    assert res.metrics.confusion == cm.compute().confusion and res.metrics.miou == cm.compute().miou
    assert set(res.predictions) == {dataset.pairs[0][0].stem}
