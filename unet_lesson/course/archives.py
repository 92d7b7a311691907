"""Archives that are whole and safe to unpack: checked zips, extraction without path escapes.

* :func:`verify_zip` - a zip whose every member's CRC checks, else it is deleted;
* :func:`safe_extract` - unzip into a temporary folder, check what came out, rename it into
  place: the target holds all of it or nothing, and no member lands outside it.

The errors are the downloads' (:mod:`.download`): :class:`DownloadError` says what to do next.
"""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath


class DownloadError(RuntimeError):
    """A download that failed; the message says what to do next.

    Not built in a notebook: :func:`~unet_lesson.course.download.download_dsb2018` raises it.
    """


class UnsafeArchiveError(DownloadError):
    """An archive member that would be written outside the target folder.

    Not built in a notebook: :func:`safe_extract` raises it.
    """


def zip_is_whole(path: Path) -> bool:
    try:
        verify_zip(path)
        return True
    except DownloadError:
        return False


def verify_zip(path: Path) -> None:
    """Raise :class:`DownloadError` (and delete the file) unless ``path`` is a whole zip.

    Not built in a notebook: the downloads check every archive with it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        bad, problem = None, f"is not a complete zip archive ({error})"
    else:
        problem = f"has a corrupt member {bad!r} (CRC mismatch)" if bad else None
    if problem:
        Path(path).unlink(missing_ok=True)
        raise DownloadError(f"{path} {problem}; it was deleted: run again to download it anew")


def _check_member(info: zipfile.ZipInfo, archive: Path, target: Path) -> None:
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    if path.is_absolute() or ".." in path.parts or ":" in path.parts[0] or is_link:
        raise UnsafeArchiveError(
            f"{archive} holds the member {name!r}, which would be written outside {target}; "
            f"refusing to extract it (the archive is damaged or malicious): delete it and "
            f"download again"
        )


def safe_extract(archive: Path, target: Path, inside: str | None = None, check=None) -> Path:
    """Unzip ``archive`` into the new folder ``target``, atomically and without path escapes.

    Members go into a temporary folder next to ``target`` that is renamed into place when
    everything is out. An archive whose content sits in one folder named like ``target``
    (``stage1_train/...``) is unwrapped; ``inside``: only that folder of the archive is
    extracted and becomes ``target``. ``check(folder)``: called on the extracted folder
    before the rename (an exception leaves nothing at ``target``). Raises
    :class:`UnsafeArchiveError` before writing anything if a member would land outside
    ``target``.

    Not built in a notebook: the downloads unpack with it.
    """
    archive, target = Path(archive), Path(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                _check_member(info, archive, target)
            members = None if inside is None else [
                n for n in bundle.namelist() if n.startswith(inside.rstrip("/") + "/")]
            if members == []:
                raise DownloadError(f"{archive} holds no {inside}/ folder; delete it and run "
                                    f"again")
            bundle.extractall(tmp, members)
        shutil.rmtree(tmp / "__MACOSX", ignore_errors=True)
        entries = list(tmp.iterdir())
        content = entries[0] if (len(entries) == 1 and entries[0].is_dir()
                                 and entries[0].name == target.name) else tmp
        content = tmp / inside if inside is not None else content
        if check is not None:
            check(content)
        os.rename(content, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
