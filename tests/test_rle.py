"""Run-length encoding in the competition's format: a hand-worked example of the column-major
order, round trips, the submission writer and the solution reader with its error messages."""

import numpy as np
import pandas as pd
import pytest

from unet_lesson import rle
from unet_lesson.toy import synthetic_nuclei


def test_column_major_order_by_hand():
    mask = np.array([[0, 1, 0, 0],
                     [0, 1, 0, 1],
                     [1, 0, 0, 1]])
    # down column 0: pixels 1, 2, 3 -> 3 is set; column 1: pixels 4, 5, 6 -> 4, 5 are set;
    # column 2: 7, 8, 9 -> none; column 3: 10, 11, 12 -> 11, 12. Runs: 3-5 and 11-12
    assert rle.rle_encode(mask) == "3 3 11 2"
    np.testing.assert_array_equal(rle.rle_decode("3 3 11 2", (3, 4)), mask.astype(bool))
    # reading row by row instead (column-major on the transpose) gives other runs
    assert rle.rle_encode(mask.T) == "2 1 6 1 8 2 12 1"
    assert rle.rle_encode(mask.T.copy().T) == "3 3 11 2"  # memory layout does not matter


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 40, size=2))
    mask = rng.random(shape) < rng.uniform(0.05, 0.95)
    text = rle.rle_encode(mask)
    np.testing.assert_array_equal(rle.rle_decode(text, shape), mask)
    numbers = np.array(text.split(), dtype=int)
    assert numbers.size % 2 == 0 and np.all(numbers >= 1)
    flat = np.flatnonzero(mask.ravel(order="F")) + 1  # 1-indexed, column-major
    covered = np.concatenate([np.arange(s, s + n) for s, n in numbers.reshape(-1, 2)]) \
        if numbers.size else np.array([], int)
    np.testing.assert_array_equal(covered, flat)


def test_empty_full_and_edge_masks():
    assert rle.rle_encode(np.zeros((5, 7), bool)) == ""
    assert not rle.rle_decode("", (5, 7)).any()
    assert not rle.rle_decode(float("nan"), (5, 7)).any()  # pandas' empty cell
    assert rle.rle_encode(np.ones((5, 7), bool)) == "1 35"
    assert rle.rle_decode("1 35", (5, 7)).all()
    edges = np.zeros((6, 9), bool)
    edges[0, :] = edges[-1, :] = edges[:, 0] = edges[:, -1] = True  # touches every edge
    assert rle.rle_encode(edges).startswith("1 7 ")  # the whole first column + top of the next
    assert rle.rle_encode(edges).endswith(" 48 7")  # bottom of column 8 + all of column 9
    np.testing.assert_array_equal(rle.rle_decode(rle.rle_encode(edges), (6, 9)), edges)
    corner = np.zeros((4, 4), bool)
    corner[-1, -1] = True
    assert rle.rle_encode(corner) == "16 1"


@pytest.mark.parametrize("text, message", [
    ("1 2 3", "odd count of numbers"),
    ("0 2", "starts and lengths must be >= 1"),
    ("3 0", "starts and lengths must be >= 1"),
    ("10 4", "a run ends at pixel 13, outside the image"),
    ("5 2 1 2", "increasing order without overlaps"),
    ("1 3 3 2", "increasing order without overlaps"),
    ("1 x", "must hold integers"),
])
def test_bad_run_lengths_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        rle.rle_decode(text, (3, 4))


def test_submission_round_trip(tmp_path):
    predictions = {
        "img_a": synthetic_nuclei((30, 40), 6, seed=0),
        "img_empty": np.zeros((10, 12), np.int32),
        "img_b": synthetic_nuclei((25, 20), 4, seed=1),
    }
    path = rle.write_submission(tmp_path / "sub" / "submission.csv", predictions)
    lines = path.read_text().splitlines()
    assert lines[0] == "ImageId,EncodedPixels"
    n_a, n_b = predictions["img_a"].max(), predictions["img_b"].max()
    assert len(lines) == 1 + n_a + 1 + n_b  # one row per nucleus, one for the empty image
    assert "img_empty," in lines
    shapes = {k: v.shape for k, v in predictions.items()}
    back = rle.read_submission_csv(path, shapes)
    for key, labels in predictions.items():
        np.testing.assert_array_equal(back[key], labels)  # ids 1..N in file order
    table = pd.read_csv(path, keep_default_na=False)  # pandas reads it too
    assert list(table.columns) == ["ImageId", "EncodedPixels"]
    assert table.loc[table.ImageId == "img_empty", "EncodedPixels"].tolist() == [""]
    # pairs work too, and ids need not be contiguous
    rle.write_submission(tmp_path / "pairs.csv", [("x", predictions["img_b"] * 5)])
    back = rle.read_submission_csv(tmp_path / "pairs.csv", {"x": (25, 20)})
    np.testing.assert_array_equal(back["x"], predictions["img_b"])
    with pytest.raises(ValueError, match=r"pairs.csv, line 2 \(ImageId x\): no shape given"):
        rle.read_submission_csv(tmp_path / "pairs.csv", {})


def test_submission_rows_equal_encoding_each_full_mask():
    labels = synthetic_nuclei((33, 47), 9, seed=3).astype(np.int64)
    expected = [("im", rle.rle_encode(labels == k)) for k in range(1, 10)]
    assert rle.submission_rows("im", labels) == expected
    huge = np.where(labels > 0, labels * 10**9, 0)  # ids far beyond the pixel count
    assert rle.submission_rows("im", huge) == expected
    with pytest.raises(ValueError, match="image im: expected an integer label image"):
        rle.submission_rows("im", labels.astype(float))
    with pytest.raises(ValueError, match="image im: negative ids"):
        rle.submission_rows("im", -labels)


def _solution(tmp_path, rows, header="ImageId,EncodedPixels,Height,Width,Usage"):
    path = tmp_path / "stage1_solution.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_read_solution_csv(tmp_path):
    labels = synthetic_nuclei((24, 30), 5, seed=2)
    rows = [f"abc,{rle.rle_encode(labels == k)},24,30,Public" for k in range(1, 6)]
    rows.append("empty,,8,9,Private")
    solution = rle.read_solution_csv(_solution(tmp_path, rows))
    assert set(solution) == {"abc", "empty"}
    np.testing.assert_array_equal(solution["abc"], labels)
    assert solution["abc"].dtype == np.int32 and solution["abc"].flags.c_contiguous
    assert solution["empty"].shape == (8, 9) and solution["empty"].max() == 0


def test_read_solution_csv_by_usage(tmp_path):
    path = _solution(tmp_path, ["a,1 3,4,4,Private", "b,2 2,4,4,Ignored", "a,9 2,4,4,Private"])
    assert set(rle.read_solution_csv(path)) == {"a", "b"}
    private = rle.read_solution_csv(path, usage="Private")
    assert set(private) == {"a"} and private["a"].max() == 2
    assert set(rle.read_solution_csv(path, usage={"Private", "Ignored"})) == {"a", "b"}
    no_usage = _solution(tmp_path, ["a,1 3,4,4"], header="ImageId,EncodedPixels,Height,Width")
    assert set(rle.read_solution_csv(no_usage)) == {"a"}
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Usage'\]"):
        rle.read_solution_csv(no_usage, usage="Private")


def test_solution_errors_name_the_file_and_line(tmp_path):
    path = _solution(tmp_path, ["a,1 3,4,4,Public"], header="ImageId,EncodedPixels,Height")
    with pytest.raises(ValueError, match=r"stage1_solution.csv: missing column\(s\) \['Width'\]"):
        rle.read_solution_csv(path)
    path = _solution(tmp_path, ["a,1 3,4,4,Public", "a,15 3,4,4,Public"])
    with pytest.raises(ValueError, match=r"stage1_solution.csv, line 3 \(ImageId a\): a run "
                                         r"ends at pixel 17, outside the image \(16 pixels\)"):
        rle.read_solution_csv(path)
    path = _solution(tmp_path, ["a,1 3,4,4,Public", "a,9 3,4,5,Public"])
    with pytest.raises(ValueError, match=r"line 3 \(ImageId a\): image size \(4, 5\) differs"):
        rle.read_solution_csv(path)
    path = _solution(tmp_path, ["a,1 3,four,4,Public"])
    with pytest.raises(ValueError, match=r"line 2 \(ImageId a\): Height and Width must be int"):
        rle.read_solution_csv(path)
    with pytest.raises(FileNotFoundError, match="nowhere.csv: no such file"):
        rle.read_solution_csv(tmp_path / "nowhere.csv")


def _real_labels(folder):
    """A real image's label image from its one-PNG-per-nucleus masks (first mask wins)."""
    from skimage.io import imread

    masks = sorted((folder / "masks").glob("*.png"))
    labels = np.zeros(imread(masks[0]).shape[:2], np.int32)
    for k, path in enumerate(masks, start=1):
        labels[(imread(path) > 0) & (labels == 0)] = k
    return labels


def test_real_masks_survive_the_solution_format(real_dsb_root, tmp_path):
    folders = sorted(p for p in real_dsb_root.iterdir() if p.is_dir())[:3]
    truth = {f.name: _real_labels(f) for f in folders}
    rows = [f"{key},{text},{labels.shape[0]},{labels.shape[1]},Public"
            for key, labels in truth.items() for _, text in rle.submission_rows(key, labels)]
    solution = rle.read_solution_csv(_solution(tmp_path, rows))
    for key, labels in truth.items():
        np.testing.assert_array_equal(solution[key], labels)


def test_overlapping_solution_masks_keep_the_first_and_warn(tmp_path):
    path = _solution(tmp_path, ["a,1 4,4,4,Public", "a,3 4,4,4,Public"])
    with pytest.warns(UserWarning, match=r"line 3 \(ImageId a\): 2 pixel\(s\) already belong"):
        solution = rle.read_solution_csv(path)
    np.testing.assert_array_equal(solution["a"].ravel(order="F")[:8], [1, 1, 1, 1, 2, 2, 0, 0])
