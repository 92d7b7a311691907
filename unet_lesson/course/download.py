"""Downloading the 2018 Data Science Bowl: the course's release of it, verified file by file.

The training set is, by default, the community-fixed release of ``stage1_train`` (the
course's: its results come from it), fetched from its git host at one pinned commit and
verified against the manifest the package ships (:mod:`.release`); ``release="original"``
takes the competition's own 670 images instead. ``stage1_test`` and ``stage1_solution.csv``
come from one of two sources of the competition's files (Caicedo et al. 2019, Nature
Methods; CC0), which also serve the original ``stage1_train``:

* ``source="bbbc038"`` (default, no account): the Broad Bioimage Benchmark Collection serves
  ``stage1_train.zip``, ``stage1_test.zip`` and ``stage1_solution.csv`` over plain HTTPS.
* ``source="kaggle"``: the competition ``data-science-bowl-2018`` through the Kaggle API (an
  account, an API token and accepting the competition's rules). Kaggle serves one zip of all
  files, holding nested zips (``stage1_train.zip``, ``stage1_test.zip``,
  ``stage1_solution.csv.zip``, ...).

What lands in ``dest`` (default ``env.data_dir()/dsb2018``)::

    dest/stage1_train/<image_id>/images/<image_id>.png, masks/*.png
    dest/stage1_train/release.json  # which release, which commit, what was verified
    dest/stage1_test/<image_id>/images/<image_id>.png
    dest/stage1_solution.csv   # stage1_test's nuclei, run-length encoded (read it with
                               # unet_lesson.rle.read_solution_csv)

Safe and whole: archives are downloaded under a temporary name and renamed only when
complete (the byte count must match ``Content-Length``), then verified (zip CRCs); extraction
goes into a temporary folder renamed into place, and refuses members that would land outside
it (``../`` or absolute paths, links). A part already in place is never fetched again, so a
second run on a complete copy does nothing (not even a network call).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from .. import env
from ..data.labelled import SOLUTION_CSV
from ..files import atomic_write
from . import release as releases
from .archives import (  # noqa: F401 (UnsafeArchiveError: raised by safe_extract, named here)
    DownloadError,
    UnsafeArchiveError,
    safe_extract,
    verify_zip,
    zip_is_whole,
)

COMPETITION = "data-science-bowl-2018"
BBBC038_URL = "https://data.broadinstitute.org/bbbc/BBBC038/"
PARTS = ("stage1_train", "stage1_test", "stage1_solution")
_WORK = ".download"  # archives in progress, inside dest

KAGGLE_TOKEN_PAGE = "https://www.kaggle.com/settings/api"
NO_CREDENTIALS = (
    f"no Kaggle credentials found: generate an API token at {KAGGLE_TOKEN_PAGE} (\"Generate New "
    "Token\" under \"API\") and set the environment variable KAGGLE_API_TOKEN to it, or save it "
    "in ~/.kaggle/access_token (in Colab: add it to the Secrets panel as KAGGLE_API_TOKEN, then "
    "`from google.colab import userdata; os.environ['KAGGLE_API_TOKEN'] = "
    "userdata.get('KAGGLE_API_TOKEN')`); an older ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and "
    "KAGGLE_KEY, also work; or use --source bbbc038 (source='bbbc038' in Python), which needs "
    "no account"
)
RULES_NOT_ACCEPTED = (
    "Kaggle refused the download (HTTP 403): accept the competition's rules first, logged in, at "
    f"https://www.kaggle.com/competitions/{COMPETITION}/rules, then run again; or use "
    "--source bbbc038 (source='bbbc038' in Python), which needs no account"
)
BAD_CREDENTIALS = (
    "Kaggle rejected your credentials (HTTP 401): generate a new API token at "
    f"{KAGGLE_TOKEN_PAGE} and replace the old one (KAGGLE_API_TOKEN, ~/.kaggle/access_token or "
    "~/.kaggle/kaggle.json); or use --source bbbc038 (source='bbbc038' in Python)"
)


def download_dsb2018(dest: str | Path | None = None, source: str = "bbbc038",
                     parts: tuple[str, ...] = PARTS, *, release: str = releases.DEFAULT_RELEASE,
                     api=None, base_url: str = BBBC038_URL,
                     release_url: str = releases.FIXED_REPOSITORY, timeout: float = 60.0,
                     progress: bool | None = None) -> Path:
    """Download and unpack the DSB 2018 stage-1 data into ``dest``; returns ``dest``.

    ``parts``: any of ``"stage1_train"``, ``"stage1_test"``, ``"stage1_solution"``.
    ``release``: ``"fixed"`` (the course's: stage1_train from the community-fixed release,
    verified against the package's manifest) or ``"original"`` (stage1_train from ``source``
    too). ``api``: a Kaggle API object to use instead of ``KaggleApi()`` (tests pass a fake).
    ``base_url``, ``release_url``: the BBBC038 folder and the fixed release's repository
    (tests point them at a local server).
    Raises :class:`DownloadError` with an actionable message on failure.

    Not built in a notebook: :func:`course_data` and ``python -m unet_lesson download`` call it.
    """
    dest = Path(dest) if dest is not None else env.data_dir() / "dsb2018"
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    if source not in ("bbbc038", "kaggle"):
        raise ValueError(f"source must be 'bbbc038' or 'kaggle', got {source!r}")
    if release not in releases.RELEASES:
        raise ValueError(f"release must be one of {releases.RELEASES}, got {release!r}")
    missing = [part for part in parts if not _present(dest, part, release)]
    if not missing:
        return dest  # a complete copy: nothing to do
    fixed = release == "fixed" and "stage1_train" in missing
    rest = [part for part in missing if not (fixed and part == "stage1_train")]
    if source == "kaggle" and rest:
        api = _kaggle_api(api)  # no credentials: say so before creating any folder
    made = [folder for folder in (dest, *dest.parents) if not folder.exists()]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if fixed:
            _fixed_train(dest, release_url, timeout, progress)
        if rest and source == "bbbc038":
            _from_bbbc038(dest, rest, base_url, timeout, progress)
        elif rest:
            _from_kaggle(dest, rest, api)
    except BaseException:
        # keep a whole archive already downloaded (the next run reuses it), but leave no empty
        # work folder, and no empty folders this call created
        for folder in (dest / _WORK, *made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        raise
    shutil.rmtree(dest / _WORK, ignore_errors=True)
    return dest


def _present(dest: Path, part: str, release: str) -> bool:
    if part == "stage1_solution":
        return (dest / SOLUTION_CSV).is_file()
    if part == "stage1_train" and (dest / part).is_dir():
        held = releases.identify_release(dest / part)["release"]
        if held in releases.RELEASES and held != release:
            raise DownloadError(f"{dest / part} holds the {held} release of stage1_train, not "
                                f"the {release} one asked for: move it aside (or choose another "
                                f"destination) and run again; nothing was changed")
    return (dest / part).is_dir()


def _fixed_train(dest: Path, repository: str, timeout: float, progress) -> None:
    """stage1_train of the fixed release: its archive at the pinned commit, extracted and
    verified against the manifest before it is moved into place (:mod:`.release`)."""
    work = dest / _WORK
    work.mkdir(exist_ok=True)
    url = releases.archive_url(repository=repository)
    archive = work / f"fixed-{releases.FIXED_COMMIT[:12]}.zip"
    if not (archive.is_file() and zip_is_whole(archive)):
        fetch(url, archive, timeout=timeout, progress=progress, dest_hint=dest, moved=(
            f"the repository or its commit {releases.FIXED_COMMIT[:7]} may be gone; see "
            f"{repository}, or take the original release (release='original', on the command "
            f"line --release original)"))
    verify_zip(archive)

    def check(folder: Path) -> None:
        try:
            found = releases.verify_release(folder)
        except releases.ReleaseError as error:  # the archive is not the release: not kept
            archive.unlink(missing_ok=True)
            raise DownloadError(f"{url}: {error}".replace(str(folder), "stage1_train")) from None
        releases.write_record(folder, found)
        print(found.summary())

    inside = releases.archive_folder(repository=repository)
    safe_extract(archive, dest / "stage1_train", inside=inside, check=check)
    archive.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# BBBC038 over HTTP
# --------------------------------------------------------------------------------------------


def _from_bbbc038(dest: Path, parts: list[str], base_url: str, timeout: float, progress) -> None:
    work = dest / _WORK
    work.mkdir(exist_ok=True)
    for part in parts:
        name = SOLUTION_CSV if part == "stage1_solution" else f"{part}.zip"
        url = base_url.rstrip("/") + "/" + name
        archive = work / name
        if part == "stage1_solution" or not (archive.is_file() and zip_is_whole(archive)):
            fetch(url, archive, timeout=timeout, progress=progress, dest_hint=dest)
        if part == "stage1_solution":
            _install_csv(archive.read_bytes(), dest / SOLUTION_CSV, url)
        else:
            verify_zip(archive)
            safe_extract(archive, dest / part, check=_original_record(part))
        archive.unlink(missing_ok=True)


def fetch(url: str, target: Path, timeout: float = 60.0, progress: bool | None = None,
          dest_hint: Path | None = None, moved: str | None = None) -> Path:
    """Download ``url`` to ``target``; ``target`` appears only when the download is whole.

    The bytes go through :func:`unet_lesson.files.atomic_write`: an error, a short read or a
    byte count that differs from ``Content-Length`` leaves no file behind. ``moved``: what to
    do when the server answers with an HTTP error (default: BBBC038's advice).

    Not built in a notebook: :func:`download_dsb2018` downloads with it.
    """
    where = dest_hint or target.parent
    request = urllib.request.Request(url, headers={"User-Agent": "unet-lesson"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, \
                atomic_write(target, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length else None
            bar = {} if progress is None else {"disable": not progress}
            size = 0
            with env.progress(total=expected, unit="B", unit_scale=True, desc=target.name,
                              **bar) as pbar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    size += len(chunk)
                    pbar.update(len(chunk))
            if expected is not None and size != expected:
                raise DownloadError(f"incomplete download of {url}: got {size} of {expected} "
                                    f"bytes; run again to restart it")
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"{url} answered HTTP {error.code} {error.reason}: " + (moved or (
                "the Broad may have moved the file; see https://bbbc.broadinstitute.org/BBBC038 "
                "for the current links, or use --source kaggle (source='kaggle' in Python)"))
        ) from None
    except http.client.IncompleteRead as error:
        raise DownloadError(
            f"incomplete download of {url}: the connection closed after "
            f"{len(error.partial)} bytes; run again to restart it"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"could not download {url} ({reason}): check your internet connection (or proxy) "
            f"and run again; or download it by hand and unzip it into {where}"
        ) from None
    return target


# --------------------------------------------------------------------------------------------
# Kaggle
# --------------------------------------------------------------------------------------------


def _kaggle_api(api):
    """An authenticated Kaggle API (``api`` or a new ``KaggleApi``), or a clear error.

    Importing ``kaggle.api.kaggle_api_extended`` first runs ``kaggle/__init__.py``, which
    authenticates at import time and prints Kaggle's own help text when it finds no
    credentials; that text is swallowed here, so the only message is ours.
    """
    if api is None:
        try:
            with _quiet():
                from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError:
            raise DownloadError("the kaggle package is not installed: pip install kaggle, or "
                                "use --source bbbc038 (source='bbbc038' in Python)") from None
        except OSError as error:  # kaggle 1.x authenticates at import: no kaggle.json
            raise _no_credentials_or(error) from None
        api = KaggleApi()
    try:
        with _quiet():
            api.authenticate()
    except SystemExit:  # kaggle 2.x without credentials (SystemExit is not an Exception)
        raise DownloadError(NO_CREDENTIALS) from None
    except OSError as error:  # kaggle 1.x without kaggle.json, or no network
        raise _no_credentials_or(error) from None
    return api


def _no_credentials_or(error: OSError) -> DownloadError:
    if "kaggle.json" in str(error):
        return DownloadError(NO_CREDENTIALS)
    return _kaggle_error(error)


@contextlib.contextmanager
def _quiet():
    """Swallow what Kaggle's client prints (its help text, "Invalid credentials!")."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _kaggle_error(error: Exception) -> DownloadError | None:
    """Translate a Kaggle/requests error into an actionable one (None: not ours to explain)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 403:
        return DownloadError(RULES_NOT_ACCEPTED)
    if status == 401:
        return DownloadError(BAD_CREDENTIALS)
    if status is not None:
        return DownloadError(f"Kaggle answered HTTP {status} ({error}); try again later, or use "
                             f"--source bbbc038 (source='bbbc038' in Python)")
    if isinstance(error, OSError):  # requests' ConnectionError and Timeout are OSErrors
        return DownloadError(f"could not reach Kaggle ({error.__class__.__name__}): check your "
                             f"internet connection and run again; or use --source bbbc038 "
                             f"(source='bbbc038' in Python)")
    return None


def _from_kaggle(dest: Path, parts: list[str], api) -> None:
    work = dest / _WORK
    work.mkdir(exist_ok=True)
    try:
        api.competition_download_files(COMPETITION, path=str(work), quiet=True)
    except Exception as error:
        translated = _kaggle_error(error)
        if translated is None:
            raise
        raise translated from None
    archives = sorted(work.glob("*.zip"))
    if not archives:
        raise DownloadError(f"the Kaggle download left no zip archive in {work}; run again")
    outer = archives[0]
    verify_zip(outer)
    with zipfile.ZipFile(outer) as bundle:
        names = {PurePosixPath(n).name: n for n in bundle.namelist()}
        for part in parts:
            wanted = [f"{SOLUTION_CSV}.zip", SOLUTION_CSV] if part == "stage1_solution" \
                else [f"{part}.zip"]
            member = next((names[w] for w in wanted if w in names), None)
            if member is None:
                raise DownloadError(f"{outer} holds no {' or '.join(wanted)} (it has "
                                    f"{sorted(names)}); delete it and run again")
            inner = work / PurePosixPath(member).name
            with bundle.open(member) as src, open(inner, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            if part == "stage1_solution":
                _install_csv(_maybe_unzip_csv(inner), dest / SOLUTION_CSV, str(outer))
            else:
                verify_zip(inner)
                safe_extract(inner, dest / part, check=_original_record(part))
            inner.unlink()
    outer.unlink()


def _original_record(part: str):
    """For stage1_train of a competition source: a check that records its release."""
    if part != "stage1_train":
        return None

    def record(folder: Path) -> None:
        images = sum(1 for p in folder.iterdir() if p.is_dir() and p.name[0] not in "._")
        releases.write_record(folder, releases.ReleaseCheck("original", "", images, 0))

    return record


def _maybe_unzip_csv(path: Path) -> bytes:
    if not zipfile.is_zipfile(path):
        return path.read_bytes()
    verify_zip(path)
    with zipfile.ZipFile(path) as inner:
        csvs = [n for n in inner.namelist() if n.endswith(".csv")]
        if len(csvs) != 1:
            raise DownloadError(f"{path} should hold one CSV file, it holds {inner.namelist()}")
        return inner.read(csvs[0])


# --------------------------------------------------------------------------------------------
# Installing the solution CSV
# --------------------------------------------------------------------------------------------


def _install_csv(data: bytes, target: Path, origin: str) -> None:
    """Write the solution CSV atomically after checking it is one (not an HTML error page)."""
    header = data[:200].decode("utf-8", "replace").splitlines()[0] if data else ""
    if "ImageId" not in header or "EncodedPixels" not in header:
        raise DownloadError(f"{origin} is not the stage-1 solution CSV (its first line is "
                            f"{header[:80]!r}); run again, or try the other source")
    with atomic_write(target, "wb") as out:
        out.write(data)
