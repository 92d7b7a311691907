"""A compact copy of the real stage1_train, small enough to travel with the working tree.

    python tools/compact_data.py                            # data/compact/dsb2018/stage1_train
    python tools/compact_data.py --source /path/to/stage1_train --max-mb 30

A lent GPU machine receives only the working tree (and the ignored folders named to travel
with it, 64 MiB in all), so the real data cannot go there whole. This copies a subset: from
every block of one image size, one image in n by id (at least two a block, so every kind of
image and enough acquisition groups stay for the group split), n the smallest that keeps the
copy under ``--max-mb``. The copy goes to ``data/compact/`` (git-ignored) with
the same layout; point ``benchmarks/gpu_acceptance.py --data`` at its
``stage1_train``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def blocks(source: Path) -> dict[tuple, list[Path]]:
    """The image folders of ``source`` by (PNG mode, height, width)."""
    found: dict[tuple, list[Path]] = {}
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and p.name[0] not in "._"):
        image = next((folder / "images").glob("*.png"))
        with Image.open(image) as im:
            key = (im.mode, im.height, im.width)
        found.setdefault(key, []).append(folder)
    return found


def choose(by_block: dict[tuple, list[Path]], every: int) -> list[Path]:
    chosen = []
    for folders in by_block.values():
        picked = folders[::every]
        chosen += picked if len(picked) >= 2 else folders[:2]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "dsb2018" / "stage1_train")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "data" / "compact" / "dsb2018" / "stage1_train")
    parser.add_argument("--max-mb", type=float, default=30.0, help="the copy's largest size")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: no data at {args.source}; download it first: python -m unet_lesson "
              f"download", file=sys.stderr)
        return 2
    by_block = blocks(args.source)
    sizes = {f: folder_bytes(f) for folders in by_block.values() for f in folders}
    every = 1
    while sum(sizes[f] for f in choose(by_block, every)) > args.max_mb * 2**20:
        every += 1
    chosen = choose(by_block, every)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    for folder in chosen:
        shutil.copytree(folder, args.out / folder.name)
    total = folder_bytes(args.out)
    print(f"{len(chosen)} of {len(sizes)} images (one in {every} of each block), "
          f"{total / 2**20:.1f} MiB, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
