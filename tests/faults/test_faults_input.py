"""Fault injection, input side: unreadable folders and files, text that is not UTF-8, recipe values that
cannot work, formats accepted by name. Each gives one UserError line naming the thing (exit code 2 in the
CLI), never a traceback. Permissions are tested as another user where the suite runs as root (root reads
everything), in a subprocess."""

import os
import pwd
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import make_camvid, make_folder_dataset
from PIL import Image

from segbench.config import config_from_dict, load_config
from segbench.data.datasets import open_dataset
from segbench.data.io import list_images
from segbench.errors import UserError


def _other_user():
    for name in ("nobody", "daemon"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def _run_as_other_user(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python subprocess that drops to an unprivileged user after its imports (the
    interpreter itself may live where only root can read, e.g. under /root), or as ourselves when not root."""
    prologue = "import segbench.data.datasets, segbench.errors\nfrom PIL import Image\nImage.init()\n"
    if os.geteuid() == 0:
        user = _other_user()
        if user is None:
            pytest.skip("running as root with no unprivileged user (nobody/daemon) to test permissions as")
        prologue += f"import os\nos.setgroups([])\nos.setgid({user.pw_gid})\nos.setuid({user.pw_uid})\n"
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, "HOME": str(tmp_path)}, timeout=120)  # fmt: skip


PRIVATE = 0o700 if os.geteuid() == 0 else 0o000  # unreadable to the subprocess's user
PRIVATE_FILE = 0o600 if os.geteuid() == 0 else 0o000


def _open_up(path):
    """Let the other user reach ``path`` through its parents (pytest's tmp folders are 0700)."""
    for parent in [path, *path.parents]:
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o055)


def test_unreadable_folder_gives_one_line(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", n=2)
    _open_up(root)
    os.chmod(root / "images", PRIVATE)  # only the owner (root) may list it
    code = f"""
        from segbench.data.datasets import open_dataset
        from segbench.errors import UserError
        try:
            open_dataset({str(root)!r})
        except UserError as exc:
            print("USERERROR", exc)
    """
    result = _run_as_other_user(code, tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert f"USERERROR {root / 'images'}: cannot list the folder (permission denied)" in result.stdout


def test_unreadable_image_is_a_skipped_item(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", n=2)
    _open_up(root)
    os.chmod(root / "images" / "img0.png", PRIVATE_FILE)
    code = f"""
        from segbench.data.datasets import open_dataset
        ds = open_dataset({str(root)!r})
        print("ITEM0", ds[0].get("error"))
        print("ITEM1", ds[1].get("error"))
    """
    result = _run_as_other_user(code, tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert f"ITEM0 {root / 'images' / 'img0.png'}: cannot read the file (permission denied)" in result.stdout
    assert "ITEM1 None" in result.stdout


def test_unreadable_dataset_root(tmp_path):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=1)
    _open_up(root)
    os.chmod(root, PRIVATE)
    code = f"""
        from segbench.data.datasets import open_dataset
        from segbench.errors import UserError
        try:
            open_dataset({str(root)!r}, "val")
        except UserError as exc:
            print("USERERROR", exc)
    """
    result = _run_as_other_user(code, tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert "USERERROR" in result.stdout and "permission denied" in result.stdout


def test_recipe_and_class_file_that_are_not_utf8(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(b"iters: 3\n# caf\xe9\n")
    with pytest.raises(UserError, match=r"r.yaml: the recipe is not UTF-8 text \(byte 14\)"):
        load_config(recipe)
    root = make_folder_dataset(tmp_path / "ds", n=1)
    (root / "classes.yaml").write_bytes(b"names: [caf\xe9, b]\n")
    with pytest.raises(UserError, match=r"classes.yaml: the class file is not UTF-8 text"):
        open_dataset(root)
    cv = make_camvid(tmp_path / "cv", n_train=1, n_val=1)
    (cv / "val.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match=r"val.txt: the split listing is not UTF-8 text"):
        open_dataset(cv, "val")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"crop_size": [0, 0]}}, r"data.crop_size: expected 2 whole numbers above 0, got \[0, 0\]"),
        ({"data": {"crop_size": [-8, 32]}}, r"data.crop_size: expected 2 whole numbers above 0"),
        ({"data": {"crop_size": [32]}}, r"data.crop_size: expected 2 whole numbers above 0"),
        ({"data": {"scale_range": [-0.5, 2.0]}}, r"data.scale_range: expected 2 ascending values above 0"),
        ({"data": {"scale_range": [2.0, 0.5]}}, r"data.scale_range: expected 2 ascending values above 0"),
        ({"iters": 0}, r"iters: must be at least 1, got 0"),
        ({"batch_size": -2}, r"batch_size: must be at least 1"),
        ({"optim": {"lr": -0.1}}, r"optim.lr: must be 0 or more, got -0.1"),
        ({"optim": {"momentum": 1.5}}, r"optim.momentum: must be within 0..1"),
        ({"optim": {"betas": [0.9, 1.0]}}, r"optim.betas: expected 2 values within 0..1"),
        ({"loss": {"ohem_thresh": 0.0}}, r"loss.ohem_thresh: must be within 0..1 \(0 excluded\)"),
        ({"data": {"num_workers": -1}}, r"data.num_workers: must be 0 or more"),
        ({"threads": -1}, r"threads: must be 0 or more"),
    ],
)
def test_recipe_values_that_cannot_work_are_refused(data, message):
    with pytest.raises(UserError, match=message):
        config_from_dict(data)


def test_gif_is_read_by_name_and_listed_in_folders(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).convert("P").save(tmp_path / "a.gif")
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    assert [p.name for p in list_images([tmp_path])] == ["a.gif", "b.png"]
    item = open_dataset(tmp_path).load(0)
    assert item["image"].shape == (12, 16, 3) and item["image"].dtype == np.uint8
