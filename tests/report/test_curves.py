"""``segbench curves``: mIoU and loss of several runs in one PNG, from their metrics.csv files."""

from PIL import Image

from segbench.cli import main
from segbench.report import plot_curves, read_metrics


def _run(folder, rows, header="iter,epoch,loss,lr,miou,pixel_accuracy,mean_accuracy,elapsed_s,img_s"):
    folder.mkdir(parents=True)
    width = len(header.split(","))
    lines = [header] + [",".join(str(v) for v in row) + "," * (width - len(row)) for row in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_read_metrics_keeps_the_rows_with_values(tmp_path):
    run = _run(tmp_path / "a", [(10, 1, 1.5), (20, 2, 1.2, 0.01, 0.31), (30, 3, "", 0.01, "nan")])
    assert read_metrics(run) == {"loss": [(10, 1.5), (20, 1.2)], "miou": [(20, 0.31)]}


def test_curves_of_two_runs_in_one_png(tmp_path, capsys):
    a = _run(tmp_path / "runs" / "fast_scnn", [(10, 1, 1.5), (20, 2, 1.2, 0.01, 0.31), (30, 3, 1.0, 0.01, 0.42)])
    b = _run(
        tmp_path / "runs" / "lraspp",
        [(25, 1, 2.0, 0.01, 0.2), (50, 2, 1.1, 0.01, 0.5)],
        header="iter,epoch,loss,lr,miou,pixel_accuracy,mean_accuracy,elapsed_s,img_s,data_wait_pct",
    )
    out = tmp_path / "curves.png"
    assert main(["curves", str(a), str(b), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fast_scnn: 2 mIoU points, 3 loss points" in printed and "lraspp: 2 mIoU points, 2 loss points" in printed
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > img.height > 200
    # an existing figure is kept unless --overwrite
    before = out.read_bytes()
    assert main(["curves", str(a), "--output", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["curves", str(a), "--output", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != before


def test_runs_with_the_same_folder_name_are_labelled_by_path(tmp_path):
    a = _run(tmp_path / "x" / "run", [(10, 1, 1.5)])
    b = _run(tmp_path / "y" / "run", [(10, 1, 1.4)])
    summary = plot_curves([a, b], tmp_path / "c.png")
    assert list(summary) == [str(a), str(b)]


def test_a_folder_without_metrics_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "c.png"
    assert main(["curves", str(tmp_path / "empty"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "empty: no metrics.csv there (not a segbench train run folder)" in err and "Traceback" not in err
    assert main(["curves", str(tmp_path / "absent"), "--output", str(out)]) == 2
    assert "no such run folder" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.csv").write_text("step,value\n1,2\n")
    assert main(["curves", str(bad), "--output", str(out)]) == 2
    assert "missing iter, loss, miou" in capsys.readouterr().err
    assert main(["curves", str(bad), "--output", str(tmp_path / "c.jpg")]) == 2
    assert "must be a .png file" in capsys.readouterr().err
    assert not out.exists()
