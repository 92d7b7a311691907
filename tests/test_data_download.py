"""Downloads, offline: a local HTTP server for BBBC038, a fake Kaggle API, failure messages."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests
from PIL import Image

from unet_lesson.course import download as dl
from unet_lesson.course.download import DownloadError, UnsafeArchiveError
from unet_lesson.course.download import download_dsb2018 as _download
from unet_lesson.data import read_dsb_sample


def download_dsb2018(*args, **kwargs):
    """The competition's own stage1_train (``release="original"``): what these tests are
    about; the course's fixed release is tested in tests/test_data_release.py."""
    return _download(*args, **{"release": "original", **kwargs})

SOLUTION = b"ImageId,EncodedPixels,Height,Width,Usage\nt1,1 3 10 2,8,8,Public\n"


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def stage_zip(ids, with_masks=True):
    members = {}
    for image_id in ids:
        image = np.full((8, 8, 4), 255, np.uint8)
        members[f"{image_id}/images/{image_id}.png"] = png_bytes(image)
        if with_masks:
            mask = np.zeros((8, 8), np.uint8)
            mask[2:5, 2:5] = 255
            members[f"{image_id}/masks/m1.png"] = png_bytes(mask)
    return zip_bytes(members)


TRAIN, TEST = stage_zip(["a1", "a2"]), stage_zip(["t1"], with_masks=False)


def corrupt_crc(data: bytes) -> bytes:
    """Flip one byte inside a stored member, so its CRC check fails."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a1/images/a1.png", b"x" * 200)
    raw = bytearray(buffer.getvalue())
    raw[raw.index(b"x" * 200) + 50] ^= 0xFF
    return bytes(raw)


class Handler(BaseHTTPRequestHandler):
    """Serves ``routes[path] = (status, body, mode)``; mode "short" sends half the body."""

    def __init__(self, *args, routes, log, **kwargs):
        self.routes, self.log = routes, log
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.log.append(self.path)
        status, body, mode = self.routes.get(self.path, (404, b"not found", "full"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "short" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    routes, log = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, routes=routes, log=log))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def serve(prefix, train=TRAIN, test=TEST, solution=SOLUTION, mode="full", status=200):
        routes[f"/{prefix}/stage1_train.zip"] = (status, train, mode)
        routes[f"/{prefix}/stage1_test.zip"] = (status, test, "full")
        routes[f"/{prefix}/stage1_solution.csv"] = (status, solution, "full")
        return f"{base}/{prefix}/"

    yield serve, log
    httpd.shutdown()
    httpd.server_close()


def leftovers(dest):
    return sorted(p.name for p in dest.rglob("*") if ".tmp" in p.name or p.suffix == ".part")


def test_bbbc038_download_unpacks_everything_once(server, tmp_path):
    serve, log = server
    url = serve("ok")
    dest = download_dsb2018(tmp_path / "dsb", source="bbbc038", base_url=url, progress=False)
    assert sorted(p.name for p in (dest / "stage1_train").iterdir()) == ["a1", "a2",
                                                                          "release.json"]
    assert json.loads((dest / "stage1_train" / "release.json").read_text())["release"] == \
        "original"
    image, labels = read_dsb_sample(dest / "stage1_train" / "a1")
    assert image.shape == (8, 8, 3) and labels.max() == 1 and (labels == 1).sum() == 9
    assert (dest / "stage1_test" / "t1" / "images" / "t1.png").is_file()
    assert (dest / "stage1_solution.csv").read_bytes() == SOLUTION
    assert not (dest / ".download").exists() and leftovers(dest) == []
    assert len(log) == 3
    download_dsb2018(dest, source="bbbc038", base_url="http://127.0.0.1:9/")  # no server
    assert len(log) == 3, "a complete copy must not be fetched again"


def test_only_missing_parts_are_fetched(server, tmp_path):
    serve, log = server
    url = serve("ok")
    download_dsb2018(tmp_path, parts=("stage1_test",), base_url=url, progress=False)
    assert log == ["/ok/stage1_test.zip"] and not (tmp_path / "stage1_train").exists()
    download_dsb2018(tmp_path, base_url=url, progress=False)
    assert log[1:] == ["/ok/stage1_train.zip", "/ok/stage1_solution.csv"]
    with pytest.raises(ValueError, match="unknown parts"):
        download_dsb2018(tmp_path, parts=("stage2_test",))


def test_a_cut_connection_is_not_taken_for_a_download(server, tmp_path):
    serve, _ = server
    url = serve("short", mode="short")
    with pytest.raises(DownloadError, match=r"incomplete download of .*stage1_train\.zip.*run "
                                            r"again"):
        download_dsb2018(tmp_path, parts=("stage1_train",), base_url=url, progress=False)
    assert not (tmp_path / "stage1_train").exists() and leftovers(tmp_path) == []


def test_a_truncated_or_corrupt_archive_is_rejected_and_deleted(server, tmp_path):
    serve, _ = server
    url = serve("truncated", train=TRAIN[: len(TRAIN) // 2])
    with pytest.raises(DownloadError, match="is not a complete zip archive.*deleted"):
        download_dsb2018(tmp_path, parts=("stage1_train",), base_url=url, progress=False)
    assert not (tmp_path / ".download" / "stage1_train.zip").exists()
    url = serve("crc", train=corrupt_crc(TRAIN))
    with pytest.raises(DownloadError, match="corrupt member 'a1/images/a1.png'"):
        download_dsb2018(tmp_path, parts=("stage1_train",), base_url=url, progress=False)
    assert not (tmp_path / "stage1_train").exists()
    # the next run starts clean and succeeds
    download_dsb2018(tmp_path, parts=("stage1_train",), base_url=serve("ok"), progress=False)
    assert (tmp_path / "stage1_train" / "a2").is_dir()


def test_members_escaping_the_target_are_refused(server, tmp_path):
    serve, _ = server
    evil = zip_bytes({"a1/images/a1.png": b"fine", "../escaped.txt": b"gotcha"})
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./escaped\.txt'.*refusing"):
        download_dsb2018(dest, parts=("stage1_train",), base_url=serve("evil", train=evil),
                         progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (dest / "escaped.txt").exists()
    assert not (dest / "stage1_train").exists() and leftovers(dest) == []
    for name in ("/etc/passwd-copy", "C:/windows.txt", "a/../../up.txt"):
        archive = tmp_path / "bad.zip"
        archive.write_bytes(zip_bytes({name: b"x"}))
        with pytest.raises(UnsafeArchiveError):
            dl.safe_extract(archive, tmp_path / "out")
    link = zipfile.ZipInfo("a1/link")
    link.external_attr = 0o120777 << 16  # a symbolic link member
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(link, "/etc")
    (tmp_path / "link.zip").write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArchiveError, match="a1/link"):
        dl.safe_extract(tmp_path / "link.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrapped_archives_are_unwrapped(tmp_path):
    archive = tmp_path / "wrapped.zip"
    archive.write_bytes(zip_bytes({"stage1_train/a1/images/a1.png": b"x"}))
    dl.safe_extract(archive, tmp_path / "stage1_train")
    assert (tmp_path / "stage1_train" / "a1" / "images" / "a1.png").read_bytes() == b"x"


def test_http_errors_and_no_network_give_actionable_messages(server, tmp_path):
    serve, _ = server
    url = serve("forbidden", status=403)
    with pytest.raises(DownloadError, match=r"HTTP 403 .*bbbc\.broadinstitute\.org/BBBC038.*"
                                            r"source='kaggle'"):
        download_dsb2018(tmp_path, base_url=url, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dsb2018(tmp_path, base_url=url.replace("forbidden", "nowhere"), progress=False)
    with pytest.raises(DownloadError, match=r"could not download .*check your internet "
                                            r"connection.*unzip it into"):
        download_dsb2018(tmp_path, base_url="http://127.0.0.1:9/", progress=False, timeout=5)
    url = serve("html", solution=b"<html>maintenance</html>")
    with pytest.raises(DownloadError, match="is not the stage-1 solution CSV"):
        download_dsb2018(tmp_path, parts=("stage1_solution",), base_url=url, progress=False)
    assert not (tmp_path / "stage1_solution.csv").exists() and leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="source must be"):
        download_dsb2018(tmp_path, source="dropbox")


# --------------------------------------------------------------------------------------------
# Kaggle, with a fake API object
# --------------------------------------------------------------------------------------------


def kaggle_bundle():
    return zip_bytes({
        "stage1_train.zip": TRAIN,
        "stage1_test.zip": TEST,
        "stage1_solution.csv.zip": zip_bytes({"stage1_solution.csv": SOLUTION}),
        "stage1_sample_submission.csv.zip": zip_bytes({"s.csv": b"ImageId,EncodedPixels\n"}),
        "stage2_test_final.zip": zip_bytes({"x/images/x.png": b"x"}),
    })


class FakeKaggleApi:
    def __init__(self, error=None, authenticated=True, bundle=None):
        self.error, self.authenticated, self.calls = error, authenticated, []
        self.bundle = bundle if bundle is not None else kaggle_bundle()

    def authenticate(self):
        self.calls.append("authenticate")
        if not self.authenticated:
            raise SystemExit(1)  # what the real KaggleApi does without credentials

    def competition_download_files(self, competition, path=None, quiet=True):
        self.calls.append(("download", competition))
        if self.error is not None:
            raise self.error
        with open(f"{path}/{competition}.zip", "wb") as out:
            out.write(self.bundle)


def http_error(status):
    response = requests.Response()
    response.status_code = status
    return requests.exceptions.HTTPError(f"{status} Client Error", response=response)


def test_kaggle_download_unpacks_the_nested_zips(tmp_path):
    api = FakeKaggleApi()
    dest = download_dsb2018(tmp_path, source="kaggle", api=api)
    assert api.calls == ["authenticate", ("download", "data-science-bowl-2018")]
    assert sorted(p.name for p in (dest / "stage1_train").iterdir() if p.is_dir()) == ["a1",
                                                                                        "a2"]
    assert (dest / "stage1_test" / "t1").is_dir()
    assert (dest / "stage1_solution.csv").read_bytes() == SOLUTION
    assert not (dest / ".download").exists() and not (dest / "stage2_test_final").exists()
    again = FakeKaggleApi(error=AssertionError("must not be called"))
    download_dsb2018(tmp_path, source="kaggle", api=again)
    assert again.calls == []


@pytest.mark.parametrize("error, message", [
    (None, r"no Kaggle credentials found: .*kaggle\.com/settings/api.*KAGGLE_API_TOKEN.*"
           r"~/\.kaggle/access_token.*Colab.*kaggle\.json.*KAGGLE_USERNAME.*source='bbbc038'"),
    (http_error(403), r"HTTP 403.*accept the competition's rules.*kaggle\.com/competitions/"
                      r"data-science-bowl-2018/rules.*source='bbbc038'"),
    (http_error(401), r"rejected your credentials \(HTTP 401\)"),
    (http_error(500), r"Kaggle answered HTTP 500"),
    (requests.exceptions.ConnectionError("offline"), r"could not reach Kaggle \(ConnectionError"
                                                     r"\): check your internet connection"),
])
def test_kaggle_failures_give_actionable_messages(tmp_path, error, message):
    api = FakeKaggleApi(error=error, authenticated=error is not None)
    dest = tmp_path / "data" / "dsb2018"
    with pytest.raises(DownloadError, match=message):
        download_dsb2018(dest, source="kaggle", api=api)
    # nothing left behind: no empty .download work folder, no empty folders made by the call
    assert not (tmp_path / "data").exists(), sorted(tmp_path.rglob("*"))


def test_kaggle_archive_without_a_part_is_reported(tmp_path):
    api = FakeKaggleApi(bundle=zip_bytes({"stage1_train.zip": TRAIN}))
    with pytest.raises(DownloadError, match=r"holds no stage1_test\.zip"):
        download_dsb2018(tmp_path, source="kaggle", api=api)


def test_the_real_kaggle_client_without_credentials(tmp_path, monkeypatch, capsys):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DownloadError, match="no Kaggle credentials found"):
        download_dsb2018(tmp_path / "dsb", source="kaggle")
    assert "Traceback" not in capsys.readouterr().out


def test_failed_downloads_leave_no_empty_folders_but_keep_what_was_there(server, tmp_path):
    serve, _ = server
    url = serve("gone", status=404)
    dest = tmp_path / "new" / "dsb2018"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dsb2018(dest, base_url=url, progress=False)
    assert not (tmp_path / "new").exists(), sorted(tmp_path.rglob("*"))
    kept = tmp_path / "kept"
    (kept / "notes").mkdir(parents=True)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dsb2018(kept, base_url=url, progress=False)
    assert sorted(p.name for p in kept.iterdir()) == ["notes"]  # the folder was there: it stays


def test_the_real_kaggle_client_prints_nothing_but_our_one_message(tmp_path):
    """A fresh interpreter: importing our module and asking Kaggle with no credentials.

    kaggle 2.x authenticates while its package is imported and prints its ~18-line help when it
    finds nothing; the student must see one message, ours, and nothing else on stdout or stderr.
    """
    pytest.importorskip("kaggle")
    script = (
        "from unet_lesson.course import download\n"
        "try:\n"
        "    download.download_dsb2018(DEST, source='kaggle')\n"
        "except download.DownloadError as error:\n"
        "    print('DownloadError:', error)\n"
    ).replace("DEST", repr(str(tmp_path / "data" / "dsb2018")))
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"}}
    env.update(HOME=str(tmp_path), KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle-config"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == f"DownloadError: {dl.NO_CREDENTIALS}\n"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("raised, message", [
    (OSError("Could not find kaggle.json. Make sure it's located in /root/.kaggle."),
     "no Kaggle credentials found"),  # kaggle 1.x
    (requests.exceptions.ConnectionError("offline"), r"could not reach Kaggle"),  # a token check
])
def test_authentication_errors_of_older_clients_and_offline(tmp_path, raised, message):
    class Api(FakeKaggleApi):
        def authenticate(self):
            print("Kaggle's own chatter")
            raise raised

    with pytest.raises(DownloadError, match=message):
        download_dsb2018(tmp_path / "dsb", source="kaggle", api=Api())
    assert not (tmp_path / "dsb").exists()
