"""Build the manifest of the community-fixed ``stage1_train`` that the package ships.

    python tools/release_manifest.py data/dsb2018/stage1_train            # check, print a summary
    python tools/release_manifest.py data/dsb2018/stage1_train --write    # replace the manifest

The manifest (``unet_lesson/course/releases/stage1_train_fixed.json``) lists every image folder
of the release with its number of files and a SHA-256 over its files
(:func:`unet_lesson.course.release.image_digest`); the download verifies each image it lists and
keeps, with a warning, the images it does not list.

The manifest shipped today was built from the 586-image subset of the release (commit
``848d396``) that the course's results come from, so 78 of the release's 664 images are not
listed. To cover the whole release, with network access:

    python -m unet_lesson download --dest /tmp/full          # the fixed release, 664 images
    python tools/release_manifest.py /tmp/full/stage1_train --write

Every image the old manifest listed must come out identical (the tool refuses otherwise: the
commit is pinned, its files cannot change); the new manifest then lists all 664, and
``tests/test_data_release.py`` checks the shipped file still reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unet_lesson.course import release

# ids the fixed release removed from the original (README.rst at the pinned commit)
REMOVED = (
    "7b38c9173ebe69b4c6ba7e703c0c27f39305d9b2910f46405993d2ea7a963b80",  # no nuclei annotated
    "12aeefb1b522b283819b12e4cfaf6b13c1264c0aadac3412b4edd2ace304cb40",  # ~20 nuclei missing
    "74a7785530687a11ecd073e772f90912d9967d02407a192bfab282c35f55ab94",  # out-of-focus nuclei
)
MANIFEST = Path(release.__file__).resolve().parent / "releases" / release.MANIFEST_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a stage1_train folder of the fixed release")
    parser.add_argument("--write", action="store_true", help=f"replace {MANIFEST.name}")
    parser.add_argument("--out", type=Path, default=MANIFEST, help="where --write writes")
    args = parser.parse_args(argv)
    new = release.build_manifest(args.folder, removed=REMOVED)
    kept = set(new["removed"]) & set(new["images"])
    if kept:
        print(f"error: {args.folder} holds {sorted(kept)[0]}, which the fixed release removed: "
              f"it is the original release", file=sys.stderr)
        return 2
    old = release.load_manifest()["images"] if MANIFEST.is_file() else {}
    changed = sorted(k for k, v in old.items() if k in new["images"] and new["images"][k] != v)
    if changed:
        print(f"error: {len(changed)} image(s) differ from the manifest, e.g. {changed[0]}: "
              f"not the pinned release", file=sys.stderr)
        return 2
    print(f"{new['listed_images']} images hashed ({len(set(old) & set(new['images']))} were "
          f"listed, {len(set(new['images']) - set(old))} new, {len(set(old) - set(new['images']))}"
          f" listed but absent here)")
    absent = set(old) - set(new["images"])
    if args.write and absent:
        print(f"error: {len(absent)} listed image(s) are not in {args.folder}, e.g. "
              f"{sorted(absent)[0]}; writing would drop them: use a whole download",
              file=sys.stderr)
        return 2
    if args.write:
        release.write_manifest(new, args.out)
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
