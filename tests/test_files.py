"""The one atomic-write helper: whole files or none, normal permissions, stale leftovers swept."""

import os

import pandas as pd
import pytest

from unet_lesson import files


def test_a_write_replaces_the_file_whole(tmp_path):
    path = files.write_text(tmp_path / "a.txt", "old")
    files.write_json(path, {"new": 1})
    assert path.read_text() == '{\n  "new": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = files.write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError, match="midway"):
        with files.atomic_write(path) as handle:
            handle.write("half of the new")
            raise RuntimeError("midway")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not the 0o600 of a temporary file


def test_csv_round_trip(tmp_path):
    table = pd.DataFrame({"image_id": ["a", "b"], "dsb": [0.5, 0.25]})
    pd.testing.assert_frame_equal(pd.read_csv(files.write_csv(tmp_path / "t.csv", table)), table)


def test_stale_temporaries_are_recognised_and_removed(tmp_path):
    stale = tmp_path / ".last.pt.k2j3h4.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = [tmp_path / "last.pt", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in keep:
        path.write_text("keep")
    assert files.remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
    assert files.remove_stale_temporaries(tmp_path / "missing") == []


def test_an_interrupted_write_leaves_only_a_recognisable_temporary(tmp_path):
    """What a kill -9 leaves behind is exactly what remove_stale_temporaries removes."""
    path = tmp_path / "last.pt"
    writer = files.atomic_write(path, "wb")
    handle = writer.__enter__()
    handle.write(b"partial")
    handle.flush()
    leftovers = [p for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and files.is_temporary(leftovers[0]) and not path.exists()
    handle.close()  # the process "dies" here: no __exit__
    assert files.remove_stale_temporaries(tmp_path) == leftovers


def test_folder_key_is_stable_and_tells_folders_apart(tmp_path):
    a, b = tmp_path / "x" / "stage1_train", tmp_path / "y" / "stage1_train"
    assert files.folder_key(a) == files.folder_key(str(a)) != files.folder_key(b)
    assert len(files.folder_key(a)) == 12
