"""Bad or unusual inputs, tried as a new user would: each gets a clear answer or the right result.

The sweep of issue 21 as tests. Silent wrong results (NaN pixels, float images, more than
65,535 nuclei, a stale label cache); unclear refusals (output paths, damaged run records,
absurd sizes, symbolic-link loops), each now checked before any work and named with what to
do; the run folder's lock; and the weaker answers around them (a refused checkpoint, bad
samples on the command line, a nested layout, a small set of one's own, a run that never beat
chance). The command line is driven through ``cli.main`` (``error: ...`` on stderr, exit 2).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tiny import tiny_overrides, tiny_set

from unet_lesson.course import preflight
from unet_lesson.course.cli import main
from unet_lesson.data import load_dsb_folder, make_synthetic_dsb

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    """The label cache of the commands goes to the test's folder, not the repository's."""
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "data-dir"))


def train_args(data, out, *more: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--set", *tiny_overrides(), *more]


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    return err


def float_tiff(path: Path, array: np.ndarray) -> None:
    """A float32 image saved as TIFF under ``path`` (a .png name, as a user might have it)."""
    Image.fromarray(array.astype(np.float32), mode="F").save(path, format="TIFF")


def with_nan_image(root: Path) -> Path:
    """Replace the first image of ``root`` by a float image in 0..1 with a few NaN pixels."""
    folder = sorted(p for p in root.iterdir() if p.is_dir())[0]
    path = folder / "images" / f"{folder.name}.png"
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    grey[:3, :3] = np.nan
    float_tiff(path, grey)
    return path


def read_only(folder: Path, restore: list) -> Path:
    """``folder`` made read-only (its permissions restored after the test)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    restore.append(folder)
    return folder


@pytest.fixture
def restore_modes(monkeypatch):
    """Folders a test made read-only get their permissions back (so tmp_path is removable).

    The root user (CI's, often) may write into a read-only folder; there the output checks'
    probe (:mod:`unet_lesson.course.preflight` makes a temporary file in the folder) is
    refused as the kernel refuses anyone else: a folder without write permission raises
    ``PermissionError``. Elsewhere the kernel itself refuses it."""
    folders: list[Path] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        real = preflight.tempfile.TemporaryFile

        def as_a_user(*args, dir=None, **kwargs):
            if dir is not None and not os.stat(dir).st_mode & 0o222:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(preflight.tempfile, "TemporaryFile", as_a_user)
    yield folders
    for folder in folders:
        folder.chmod(0o755)


# --------------------------------------------------------------------------------------------
# Wrong: silent wrong results
# --------------------------------------------------------------------------------------------


def test_train_refuses_an_image_with_nan_pixels_naming_it(tmp_path, capsys):
    root, _ = tiny_set(tmp_path / "data", seed=1)
    bad = with_nan_image(root)
    assert main(train_args(root, tmp_path / "run")) == 2
    err = error_of(capsys)
    assert str(bad) in err and "NaN" in err and "--skip-bad" in err
    assert not (tmp_path / "run").exists()  # refused before the run folder was made
    # the command-line form of on_error="skip": the bad sample is left out, and said so
    with pytest.warns(UserWarning, match=f"skipped sample {bad.parent.parent.name}"):
        assert main(train_args(root, tmp_path / "run", "--skip-bad")) == 0
    assert "skipped 1 bad sample(s)" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "run" / "splits.csv")) == 9


def test_predict_refuses_an_image_with_nan_pixels_naming_it(finished_run, tmp_path, capsys):
    images = make_synthetic_dsb(tmp_path / "images", n_images=2, seed=4, image_size=48,
                                progress=False)
    bad = with_nan_image(images)
    assert main(["predict", "--run", str(finished_run), "--images", str(images),
                 "--out", str(tmp_path / "pred")]) == 2
    err = error_of(capsys)
    assert str(bad) in err and "NaN" in err


def test_predict_tiled_refuses_nan_input():
    from unet_lesson.networks import UNet
    from unet_lesson.predict import predict_tiled

    net = UNet(in_channels=1, base_channels=2, depth=2, padding="same")
    image = np.zeros((1, 32, 32), dtype=np.float32)
    image[0, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"holds 1 NaN or infinite value"):
        predict_tiled(net, image, tile_size=32)


def test_predict_keeps_every_id_of_more_than_65535_nuclei(finished_run, tmp_path, monkeypatch,
                                                        capsys):
    """90,000 nuclei: a 16-bit PNG wrapped the ids; every id must read back the same."""
    from unet_lesson.course.run import Run
    from unet_lesson.data import read_label_image

    images = make_synthetic_dsb(tmp_path / "images", n_images=1, seed=4, image_size=300,
                                progress=False)
    many = np.arange(1, 300 * 300 + 1, dtype=np.int64).reshape(300, 300)  # 90,000 nuclei
    monkeypatch.setattr(Run, "postprocess", lambda self: (lambda *args: many))
    assert main(["predict", "--run", str(finished_run), "--images", str(images),
                 "--out", str(tmp_path / "pred")]) == 0
    [written] = sorted((tmp_path / "pred").glob("*_labels.*"))
    np.testing.assert_array_equal(read_label_image(written), many)
    assert "more than 65,535 nuclei" in capsys.readouterr().out


def test_label_files_round_trip_and_png_refuses_what_it_cannot_hold(tmp_path):
    from unet_lesson.data import read_label_image, write_label_image

    few = np.array([[0, 1], [65535, 2]])
    np.testing.assert_array_equal(read_label_image(write_label_image(tmp_path / "a.png", few)),
                                  few)
    many = np.array([[0, 70000], [2**31 - 1, 5]])
    np.testing.assert_array_equal(read_label_image(write_label_image(tmp_path / "b.tif", many)),
                                  many)
    with pytest.raises(ValueError, match=r"b\.png: ids from 0 to 2147483647 .*b\.tif"):
        write_label_image(tmp_path / "b.png", many)


def test_label_cache_sees_a_mask_edited_in_place_with_the_same_size_and_time(tmp_path):
    root = make_synthetic_dsb(tmp_path / "data", n_images=1, seed=2, image_size=48,
                              progress=False)
    mask = sorted(root.glob("*/masks/*.png"))[0]
    on = np.zeros((48, 48), np.uint8)
    on[5:10, 5:10] = 255
    Image.fromarray(on).save(mask, compress_level=0)  # uncompressed: size set by the shape
    before = load_dsb_folder(root, cache=tmp_path / "cache", progress=False)[0].labels
    stat = mask.stat()
    Image.fromarray(np.roll(on, 20, axis=1)).save(mask, compress_level=0)
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert mask.stat().st_size == stat.st_size and mask.stat().st_mtime_ns == stat.st_mtime_ns
    after = load_dsb_folder(root, cache=tmp_path / "cache", progress=False)[0].labels
    fresh = load_dsb_folder(root, cache=False, progress=False)[0].labels
    assert not np.array_equal(before, fresh)  # the edit changed the labels...
    np.testing.assert_array_equal(after, fresh)  # ...and the cache saw it


def test_a_float_image_in_0_1_reads_as_its_values_not_stretched(tmp_path):
    from unet_lesson.data.dsb import read_image

    values = np.linspace(0.0, 0.5, 64, dtype=np.float32).reshape(8, 8)  # maximum 0.5, not 1
    float_tiff(tmp_path / "x.png", values)
    np.testing.assert_array_equal(read_image(tmp_path / "x.png")[..., 0],
                                  np.round(values.astype(np.float64) * 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Unclear: output paths, checked before any work
# --------------------------------------------------------------------------------------------


def test_train_out_in_a_read_only_folder(tmp_path, capsys, restore_modes):
    locked = read_only(tmp_path / "locked", restore_modes)
    # a data folder that is not there: the output is checked first, before any data is read
    assert main(train_args(tmp_path / "no-data", locked / "run")) == 2
    err = error_of(capsys)
    assert str(locked) in err and "--out" in err and "cannot write" in err


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_train_out_that_is_or_lies_below_a_file(tmp_path, capsys, where):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    out = afile if where == "file" else afile / "run"
    assert main(train_args(tmp_path / "no-data", out)) == 2
    err = error_of(capsys)
    assert str(afile) in err and "is a file" in err and "--out" in err
    assert afile.read_text() == "keep me"


def test_predict_out_that_is_a_file(finished_run, tiny_data, tmp_path, capsys):
    afile = tmp_path / "pred"
    afile.write_text("keep me")
    assert main(["predict", "--run", str(finished_run), "--images", str(tiny_data[0]),
                 "--out", str(afile)]) == 2
    err = error_of(capsys)
    assert str(afile) in err and "is a file" in err and afile.read_text() == "keep me"


def test_predict_out_in_a_read_only_folder(finished_run, tiny_data, tmp_path, capsys,
                                           restore_modes):
    locked = read_only(tmp_path / "locked", restore_modes)
    assert main(["predict", "--run", str(finished_run), "--images", str(tiny_data[0]),
                 "--out", str(locked)]) == 2
    err = error_of(capsys)
    assert str(locked) in err and "--out" in err and "cannot write" in err


def test_submit_out_in_a_read_only_folder(finished_run, tiny_data, tmp_path, capsys,
                                          restore_modes):
    locked = read_only(tmp_path / "locked", restore_modes)
    assert main(["submit", "--run", str(finished_run), "--images", str(tiny_data[0]),
                 "--out", str(locked / "sub.csv")]) == 2
    err = error_of(capsys)
    assert str(locked) in err and "--out" in err and "cannot write" in err


def test_submit_out_that_is_a_folder(finished_run, tiny_data, tmp_path, capsys):
    assert main(["submit", "--run", str(finished_run), "--images", str(tiny_data[0]),
                 "--out", str(tmp_path)]) == 2
    err = error_of(capsys)
    assert str(tmp_path) in err and "is a folder" in err and "submission.csv" in err


def test_evaluate_a_run_in_a_read_only_folder(finished_copy, capsys, restore_modes):
    read_only(finished_copy, restore_modes)
    assert main(["evaluate", "--run", str(finished_copy)]) == 2
    err = error_of(capsys)
    assert str(finished_copy) in err and "evaluate_test.csv" in err and "cp -r" in err


def test_download_dest_that_is_a_file(tmp_path, capsys):
    afile = tmp_path / "dsb"
    afile.write_text("keep me")
    assert main(["download", "--dest", str(afile)]) == 2
    err = error_of(capsys)
    assert str(afile) in err and "is a file" in err and "--dest" in err


# --------------------------------------------------------------------------------------------
# Unclear: the run record, the configuration and the data
# --------------------------------------------------------------------------------------------


def test_run_json_holds_the_absolute_data_path(tmp_path, monkeypatch):
    root, _ = tiny_set(tmp_path / "work" / "data", seed=1)
    monkeypatch.chdir(tmp_path / "work")
    assert main(train_args("data", "run")) == 0
    info = json.loads((tmp_path / "work" / "run" / "run.json").read_text())
    assert info["data_root"] == str(root.resolve())
    monkeypatch.chdir(tmp_path)  # another working directory
    assert main(["evaluate", "--run", "work/run"]) == 0


def test_a_stored_relative_data_path_that_does_not_resolve_is_named(finished_copy, tmp_path,
                                                                    monkeypatch, capsys):
    info = json.loads((finished_copy / "run.json").read_text())
    (finished_copy / "run.json").write_text(json.dumps({**info, "data_root": "data/tiny"}))
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--run", str(finished_copy)]) == 2
    err = error_of(capsys)
    assert str(finished_copy / "run.json") in err and "data/tiny" in err and "relative" in err
    assert "--data" in err


@pytest.mark.parametrize("size", [100000, 1024])
def test_a_tile_larger_than_any_image_is_refused_before_the_run_folder(tiny_data, tmp_path,
                                                                       capsys, size):
    assert main(train_args(tiny_data[0], tmp_path / "run", f"tile_size={size}")) == 2
    err = error_of(capsys)
    if size > 4096:  # the configuration's range, and why
        assert "tile_size must be at most 4096 pixels" in err and "largest is" in err
    else:  # the data's largest image, and what fits
        assert "larger than every image" in err and "64x64" in err
        assert "--set tile_size=64" in err
    assert not (tmp_path / "run").exists()


def test_a_mask_that_is_a_symbolic_link_loop(tmp_path, capsys):
    root, _ = tiny_set(tmp_path / "data", seed=1)
    loop = sorted(root.glob("*/masks"))[0] / "loop.png"
    os.symlink(loop, loop)
    assert main(train_args(root, tmp_path / "run")) == 2
    err = error_of(capsys)
    assert str(loop) in err and "symbolic link" in err and "loop" in err


@pytest.mark.parametrize("damage", ["garbage run.json", "truncated config.json"])
def test_a_damaged_run_record_is_named(finished_copy, tiny_data, tmp_path, capsys, damage):
    name = damage.split()[1]
    path = finished_copy / name
    if damage.startswith("garbage"):
        path.write_bytes(b"\x00\x13garbage\xff")
    else:
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    assert main(["predict", "--run", str(finished_copy), "--images", str(tiny_data[0]),
                 "--out", str(tmp_path / "pred")]) == 2
    err = error_of(capsys)
    assert str(path) in err and "damaged" in err and "--overwrite" in err


def test_a_solution_row_with_an_absurd_size_is_named(tmp_path):
    from unet_lesson.rle import read_solution_csv

    path = tmp_path / "stage1_solution.csv"
    pd.DataFrame([{"ImageId": "a", "EncodedPixels": "1 3", "Height": 1_000_000,
                   "Width": 1_000_000, "Usage": "Public"}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"stage1_solution\.csv, line 2.*Height x Width = "
                                         r"1000000x1000000 is larger than any image"):
        read_solution_csv(path)


# --------------------------------------------------------------------------------------------
# The run folder's lock: two processes on one run
# --------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from unet_lesson.course.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_process_meets_the_lock_and_a_crash_releases_it(finished_copy, tiny_data,
                                                                 capsys):
    root, folder = tiny_data[0], finished_copy
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        for command in (["--resume"], ["--overwrite"]):
            assert main(["train", "--data", str(root), "--out", str(folder), *command]) == 2
            err = error_of(capsys)
            assert f"{folder} is in use by process {holder.pid}" in err and "Wait" in err
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    finally:
        holder.kill()  # a crash: the operating system releases the lock
        holder.wait()
        holder.stdout.close()
    deadline = time.monotonic() + 10
    while main(["train", "--data", str(root), "--out", str(folder), "--resume"]) != 0:
        assert time.monotonic() < deadline, capsys.readouterr().err
        time.sleep(0.2)
    # released when the command ended: another process takes it at once
    took = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""),
                           str(folder)], capture_output=True, text=True, timeout=60)
    assert took.stdout.strip() == "held", took.stderr


# --------------------------------------------------------------------------------------------
# Held, but weak; a set of one's own; a run that never beat chance
# --------------------------------------------------------------------------------------------


def test_a_malicious_checkpoint_is_refused_without_the_advice_to_load_it(finished_copy,
                                                                          tiny_data, tmp_path,
                                                                          capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"format": "unet-lesson-checkpoint/1", "x": Evil()}, finished_copy / "best.pt")
    assert main(["predict", "--run", str(finished_copy), "--images", str(tiny_data[0]),
                 "--out", str(tmp_path / "pred")]) == 2
    err = error_of(capsys)
    assert "not a checkpoint this course wrote" in err and "must not be loaded" in err
    assert "weights_only" not in err


@pytest.mark.parametrize("given", ["a folder of data sets", "one sample", "not samples"])
def test_a_data_folder_one_level_off_is_named(tiny_data, tmp_path, capsys, given):
    root = tiny_data[0]
    data = {"a folder of data sets": root.parent, "one sample": sorted(root.iterdir())[0],
            "not samples": tmp_path / "data"}[given]
    (tmp_path / "data" / "cache").mkdir(parents=True)  # e.g. data/ with its cache/ beside
    assert main(train_args(data, tmp_path / "run")) == 2
    err = error_of(capsys)
    if given == "a folder of data sets":
        assert "holds samples itself" in err and f"use {root} as the data folder" in err
    elif given == "one sample":
        assert "part of one sample" in err and f"the data folder is {root}" in err
    else:
        assert f"{data / 'cache'}: not a sample (no images/ inside)" in err
    assert "download may be incomplete" not in err


def test_a_small_set_of_ones_own_is_told_the_setting_to_type(tmp_path, capsys):
    """12 images of one acquisition: too few groups to hold whole groups out."""
    from unet_lesson.data import training_split

    one = make_synthetic_dsb(tmp_path / "one", n_images=1, seed=5, image_size=64,
                             progress=False)
    source = next(p for p in one.iterdir() if p.is_dir())
    own = tmp_path / "own"
    for k in range(12):
        copy = shutil.copytree(source, own / f"cell{k:02d}")
        (copy / "images" / f"{source.name}.png").rename(copy / "images" / f"cell{k:02d}.png")
    assert main(["train", "--data", str(own), "--out", str(tmp_path / "run")]) == 2
    err = error_of(capsys)
    assert "too few groups" in err and "--set split=random" in err
    assert not (tmp_path / "run").exists()
    samples = load_dsb_folder(own, cache=False, progress=False)
    counts = training_split(samples, "random", 0.15, 0.15)["split"].value_counts()
    assert counts["train"] > 0 and counts["val"] > 0  # what it suggests works


def test_a_run_that_never_beat_chance_says_how_to_go_on_and_resume_trains_further(
        tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("unet_lesson.train.validation_scores",  # a network that finds nothing
                        lambda *a, **k: {"val_dice": 0.0, "val_dsb": 0.0})
    root, run = tiny_data[0], tmp_path / "run"
    assert main(train_args(root, run, "num_epochs=1", "best_above_chance=true")) == 2
    err = error_of(capsys)
    assert "has no best.pt" in err and "last.pt and history.csv are kept" in err
    assert f"--out {run} --resume --set num_epochs=2" in err
    assert (run / "last.pt").is_file() and len(pd.read_csv(run / "history.csv")) == 1
    # what the message says to type trains further: one more epoch, recorded in config.json
    assert main(["train", "--data", str(root), "--out", str(run), "--resume",
                 "--set", "num_epochs=2"]) == 2  # (still nothing found by this network)
    assert len(pd.read_csv(run / "history.csv")) == 2
    assert json.loads((run / "config.json").read_text())["num_epochs"] == 2
    capsys.readouterr()
    assert main(["train", "--data", str(root), "--out", str(run), "--resume",
                 "--set", "num_epochs=1"]) == 2  # fewer epochs: refused, naming it
    assert "num_epochs: 2 -> 1 (a resume may raise it, not lower it)" in error_of(capsys)


# --------------------------------------------------------------------------------------------
# Ecosystem and figures
# --------------------------------------------------------------------------------------------


def test_kaggle_floor_is_the_first_release_that_reads_kaggle_api_token():
    """kaggle 1.6.17 and 1.7.4.5 ignore KAGGLE_API_TOKEN ("Could not find kaggle.json");
    1.8.0 reads it (measured in throwaway environments)."""
    from test_packaging import _pyproject_requirements

    assert _pyproject_requirements()["kaggle"] == ">=1.8"


def test_download_messages_give_the_command_line_flag():
    from unet_lesson.course import download

    for message in (download.NO_CREDENTIALS, download.RULES_NOT_ACCEPTED,
                    download.BAD_CREDENTIALS):
        assert "--source bbbc038" in message


def test_comparison_rows_keep_image_ids_apart_and_the_errors_column_has_a_legend():
    from unet_lesson import plotting

    synthetic = ["syn-s0-0001", "syn-s0-0008", "syn-s0-0009"]
    assert plotting.short_ids(synthetic) == synthetic  # once all three read "syn-s0-000"
    dsb = ["0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9",
           "0acd2c223d300ea55d0546797713851e818e5c697d073b7f4091b96ce0f3d2fe"]
    assert plotting.short_ids(dsb) == ["0a7d30b252…", "0acd2c223d…"]
    labels = np.zeros((8, 8), dtype=np.int32)
    fig = plotting.show_comparison([np.zeros((8, 8, 3), np.uint8)], [labels], [labels],
                                   errors=True)
    assert "grey TP" in fig.axes[3].get_title()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_demo_prints_where_its_data_is(tiny_data, tmp_path, monkeypatch, capsys):
    from tiny import tiny_config

    from unet_lesson.course import commands
    from unet_lesson.course.datasets import DataSource

    root = tiny_data[0]
    monkeypatch.setattr(commands, "find_or_make_dataset",
                        lambda prefer: DataSource(root, "synthetic", 10))
    monkeypatch.setattr(commands, "course_config", lambda kind, device: tiny_config())
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert f"data: synthetic, 10 images in {root}" in out and "<data dir>" not in out
